//! One request's life inside the engine, as the request path and the instance both see it.
//!
//! A [`RequestTrace`] is created by the request path and travels with the request into the
//! worker that runs it. Through it:
//! - the request learns the faults of the instance it ran on (classification after the
//!   instance is gone);
//! - the instance learns that the client has gone ([`RequestTrace::cancel`]): when every live
//!   request of an instance is cancelled, the epoch callback interrupts a running guest at the
//!   next tick and [`InstanceRequests`]' waker makes the worker's expiration end a guest that
//!   waits in a host call;
//! - the execution slot ([`SlotHold`]) is held by both sides and released only when the
//!   request path is done with the response *and* the worker is done with the request, so no
//!   more guests run than the concurrency limit, whoever leaves first.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

use super::failure::InstanceFaults;

/// Something held while a request runs, released when dropped (the execution slot and the
/// in-flight gauge, from `http::admission`).
pub type SlotHold = Arc<dyn Send + Sync>;

pub struct RequestTrace {
    request_id: String,
    instance: OnceLock<(Arc<InstanceFaults>, Arc<InstanceRequests>)>,
    cancelled: AtomicBool,
    /// Set when the worker is done with the request (answered, expired or the instance gone).
    finished: AtomicBool,
    /// The worker's share of the slot, taken when the worker accepts the request.
    hold: Mutex<Option<SlotHold>>,
}

impl RequestTrace {
    pub fn new(request_id: &str, hold: Option<SlotHold>) -> Arc<RequestTrace> {
        Arc::new(RequestTrace {
            request_id: request_id.to_string(),
            instance: OnceLock::new(),
            cancelled: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            hold: Mutex::new(hold),
        })
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The faults of the instance this request ran on, once it ran.
    pub fn faults(&self) -> Option<&InstanceFaults> {
        self.instance.get().map(|(f, _)| &**f)
    }

    /// The client has gone: stop the guest if nothing else needs its instance.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Release);
        if let Some((_, requests)) = self.instance.get() {
            requests.waker.wake();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// The worker accepted the request on this instance; returns the future that lives as long
    /// as the worker works on it (it holds the worker's share of the slot).
    pub(super) fn started_on(
        self: &Arc<Self>,
        faults: &Arc<InstanceFaults>,
        requests: &Arc<InstanceRequests>,
        deadline: Pin<Box<dyn Future<Output = ()> + Send + Sync>>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let _ = self.instance.set((faults.clone(), requests.clone()));
        requests.add(self.clone());
        let hold = self.hold.lock().unwrap().take();
        Box::pin(WorkerShare {
            deadline: if self.is_cancelled() {
                // Gone before it started: expire it at once.
                None
            } else {
                Some(deadline)
            },
            trace: self.clone(),
            _hold: hold,
        })
    }
}

/// The worker's side of one request: its deadline, and its share of the slot.
struct WorkerShare {
    deadline: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
    trace: Arc<RequestTrace>,
    _hold: Option<SlotHold>,
}

impl Future for WorkerShare {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.deadline.as_mut() {
            Some(d) => d.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for WorkerShare {
    fn drop(&mut self) {
        self.trace.finished.store(true, Ordering::Release);
    }
}

/// The requests an instance is working on, and how to wake its worker.
#[derive(Default)]
pub struct InstanceRequests {
    live: Mutex<Vec<Arc<RequestTrace>>>,
    /// The newest request's id, kept after it finishes: a guest's output may reach the host
    /// after its answer (WASIp3 streams are read by a host task).
    newest: Mutex<Option<String>>,
    pub(super) waker: AtomicWaker,
}

impl InstanceRequests {
    fn add(&self, trace: Arc<RequestTrace>) {
        *self.newest.lock().unwrap() = Some(trace.request_id.clone());
        let mut live = self.live.lock().unwrap();
        live.retain(|t| !t.finished.load(Ordering::Acquire));
        live.push(trace);
    }

    /// True when the instance has requests and every one of them was cancelled: nothing
    /// needs it any more.
    pub fn abandoned(&self) -> bool {
        let mut live = self.live.lock().unwrap();
        live.retain(|t| !t.finished.load(Ordering::Acquire));
        !live.is_empty() && live.iter().all(|t| t.is_cancelled())
    }

    /// The id of the newest request the instance took (guest output is attributed to it).
    pub fn newest_request_id(&self) -> Option<String> {
        self.newest.lock().unwrap().clone()
    }
}

/// Cancels its request when dropped while armed: the request path holds one until the
/// response is complete, so a client that leaves (hyper drops the future or the body) cancels.
pub struct CancelOnDrop(Option<Arc<RequestTrace>>);

impl CancelOnDrop {
    pub fn new(trace: &Arc<RequestTrace>) -> CancelOnDrop {
        CancelOnDrop(Some(trace.clone()))
    }

    /// The request completed: nothing to cancel.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(trace) = self.0.take() {
            trace.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_abandoned_when_all_its_live_requests_are_cancelled() {
        let faults = Arc::new(InstanceFaults::default());
        let requests = Arc::new(InstanceRequests::default());
        let a = RequestTrace::new("a", None);
        let b = RequestTrace::new("b", None);
        let share_a = a.started_on(&faults, &requests, Box::pin(std::future::pending()));
        let share_b = b.started_on(&faults, &requests, Box::pin(std::future::pending()));
        assert!(!requests.abandoned());
        a.cancel();
        assert!(!requests.abandoned(), "b still needs the instance");
        drop(share_b); // b answered
        assert!(requests.abandoned());
        drop(share_a);
        assert!(!requests.abandoned(), "nothing live");
        assert_eq!(requests.newest_request_id().as_deref(), Some("b"));
    }

    #[test]
    fn the_slot_is_held_until_both_sides_are_done() {
        let hold: SlotHold = Arc::new(());
        let weak = Arc::downgrade(&hold);
        let trace = RequestTrace::new("r", Some(hold));
        let requests = Arc::new(InstanceRequests::default());
        let share = trace.started_on(
            &Arc::new(InstanceFaults::default()),
            &requests,
            Box::pin(std::future::pending()),
        );
        drop(trace);
        assert!(
            weak.upgrade().is_some(),
            "the worker still runs the request"
        );
        drop(share);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn dropping_an_armed_guard_cancels() {
        let trace = RequestTrace::new("r", None);
        drop(CancelOnDrop::new(&trace));
        assert!(trace.is_cancelled());
        let other = RequestTrace::new("s", None);
        let mut guard = CancelOnDrop::new(&other);
        guard.disarm();
        drop(guard);
        assert!(!other.is_cancelled());
    }
}
