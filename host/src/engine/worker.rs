//! How long an instance lives and how many requests it takes: wasmtime-wasi-http's
//! `WorkerState` and `WorkerExpiration` for fnhost.
//!
//! A fresh instance per request (reuse 1) takes exactly one request. A reused instance takes
//! up to `instance_reuse` requests and is dropped after a second idle: a WASIp3 one at most
//! [`MAX_CONCURRENT_PER_REUSED_INSTANCE`] at once, a WASIp2 one (whose handler is a synchronous
//! export that cannot be entered twice) one after another, as `wasmtime serve` does. Every request has its own deadline (the future
//! `on_request_start` returns); [`Expiration`] is the second line of defence that wasmtime's
//! docs ask for, polled from outside the store's event loop, for guests blocked in host calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::handler::{ShouldAccept, WorkerExpiration, WorkerState, WorkerStatus};

use super::failure::InstanceFaults;
use super::guest::{GuestState, RequestData};
use super::request::InstanceRequests;

/// Requests one reused WASIp3 instance may run at once (as `wasmtime serve`).
const MAX_CONCURRENT_PER_REUSED_INSTANCE: usize = 16;

/// How long a reused instance may wait idle for its next request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// When an instance should be dropped: idle too long (reused instances), a request past its
/// timeout (then the fault is recorded for the requests on it), or every request it works on
/// cancelled (its clients have gone; the cancel wakes this through the instance's waker).
pub struct Expiration {
    request_timeout: Duration,
    faults: Arc<InstanceFaults>,
    requests: Arc<InstanceRequests>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Expiration {
    pub(super) fn new(
        request_timeout: Duration,
        faults: Arc<InstanceFaults>,
        requests: Arc<InstanceRequests>,
    ) -> Expiration {
        Expiration {
            request_timeout,
            faults,
            requests,
            sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86400 * 365))),
        }
    }
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let me = self.get_mut();
        if status != WorkerStatus::Idle {
            me.requests.waker.register(cx.waker());
            if me.requests.abandoned() {
                me.faults.cancelled_hit();
                return Poll::Ready(());
            }
        }
        let timeout = match status {
            WorkerStatus::Idle => IDLE_TIMEOUT,
            WorkerStatus::Requests | WorkerStatus::PostReturn => me.request_timeout,
        };
        let deadline = tokio::time::Instant::from_std(start + timeout);
        if me.sleep.deadline() != deadline {
            me.sleep.as_mut().reset(deadline);
        }
        let expired = me.sleep.as_mut().poll(cx);
        if expired.is_ready() && status != WorkerStatus::Idle {
            me.faults.deadline_hit();
        }
        expired
    }
}

pub struct Worker {
    reuse: u32,
    max_concurrent: usize,
    request_timeout: Duration,
}

impl Worker {
    /// `concurrent`: whether the handler can run requests concurrently (WASIp3's async export).
    pub(super) fn new(reuse: u32, concurrent: bool, request_timeout: Duration) -> Worker {
        Worker {
            reuse,
            max_concurrent: if reuse > 1 && concurrent {
                MAX_CONCURRENT_PER_REUSED_INSTANCE
            } else {
                1
            },
            request_timeout,
        }
    }
}

impl WorkerState for Worker {
    type StoreData = GuestState;
    type RequestData = RequestData;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.reuse as usize {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, GuestState>,
        trace: RequestData,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        // The store's CPU deadline follows the newest request; each request's own deadline is
        // the returned future (and, for a busy guest, `Expiration` on the whole instance). The
        // future also holds the worker's share of the request's execution slot.
        store.data_mut().deadline = Instant::now() + self.request_timeout;
        let (faults, requests) = (store.data().faults.clone(), store.data().requests.clone());
        trace.started_on(
            &faults,
            &requests,
            Box::pin(tokio::time::sleep(self.request_timeout)),
        )
    }

    fn drop(&self, store: Store<GuestState>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            tracing::debug!(error = %format!("{e:#}"), "instance ended with an error");
        }
        drop(store);
    }
}
