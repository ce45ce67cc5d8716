//! Admission: at most `max_concurrent_requests` guests execute at once (a slot is held until
//! the response is done *and* the guest has stopped, see `engine::request`); up to
//! `max_queued_requests` more wait (bounded by the request timeout); beyond that → 503 with
//! `Retry-After`. The slots and queue places are shared out among the serving lanes
//! ([`Admission::per_lane`]): a request waits only for a slot of its own lane, so a freed slot
//! goes to a request on the same thread and never wakes another (one semaphore for all lanes
//! cost a third of the requests/s at 64 connections, bench/analysis.md). Every place taken —
//! an execution slot, a queue place, the in-flight gauge — is held by a value whose `Drop`
//! gives it back, so a client that disconnects at any moment leaks nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::response::{busy_response, ResponseBody};
use crate::metrics::{GaugeI64, Metrics, RejectReason};

pub struct Admission {
    executing: Arc<Semaphore>,
    max_concurrent: usize,
    queued: AtomicUsize,
    max_queued: usize,
    max_wait: Duration,
}

/// The right to execute one guest request.
pub struct ExecutionSlot(#[allow(dead_code)] OwnedSemaphorePermit); // held, not read

/// An execution slot in use: the guest is running (or streaming its body), counted in the
/// in-flight gauge until this is dropped.
pub struct Permit {
    _slot: ExecutionSlot,
    in_flight: GaugeI64,
}

impl ExecutionSlot {
    pub fn start(self, in_flight: &GaugeI64) -> Permit {
        in_flight.inc();
        Permit {
            _slot: self,
            in_flight: in_flight.clone(),
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.in_flight.dec();
    }
}

/// A place in the queue, given back on drop (also when the waiting request is dropped).
struct QueuePlace<'a> {
    admission: &'a Admission,
    gauge: &'a GaugeI64,
}

impl Drop for QueuePlace<'_> {
    fn drop(&mut self) {
        self.admission.queued.fetch_sub(1, Ordering::AcqRel);
        self.gauge.dec();
    }
}

impl Admission {
    /// `lanes` admissions whose slots and queue places add up to `max_concurrent` and
    /// `max_queued`, shared out as evenly as they divide. Each lane needs a slot:
    /// `lanes <= max_concurrent`.
    pub fn per_lane(
        lanes: usize,
        max_concurrent: usize,
        max_queued: usize,
        max_wait: Duration,
    ) -> Vec<Admission> {
        assert!(
            (1..=max_concurrent).contains(&lanes),
            "{lanes} lanes for {max_concurrent} slots"
        );
        let share = |total: usize, lane: usize| total / lanes + usize::from(lane < total % lanes);
        (0..lanes)
            .map(|lane| {
                Admission::new(
                    share(max_concurrent, lane),
                    share(max_queued, lane),
                    max_wait,
                )
            })
            .collect()
    }

    fn new(max_concurrent: usize, max_queued: usize, max_wait: Duration) -> Admission {
        Admission {
            executing: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            queued: AtomicUsize::new(0),
            max_queued,
            max_wait,
        }
    }

    /// A slot now, a place in the queue and then a slot, or a 503.
    #[allow(clippy::result_large_err)] // the error is the answer, moved once
    pub async fn admit(&self, metrics: &Metrics) -> Result<ExecutionSlot, Response<ResponseBody>> {
        if let Ok(p) = self.executing.clone().try_acquire_owned() {
            return Ok(ExecutionSlot(p));
        }
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            metrics.rejected(RejectReason::QueueFull);
            return Err(busy_response(format!(
                "server busy: {} requests executing and {} queued; retry later",
                self.max_concurrent, self.max_queued
            )));
        }
        metrics.queued().inc();
        let place = QueuePlace {
            admission: self,
            gauge: metrics.queued(),
        };
        let waited =
            tokio::time::timeout(self.max_wait, self.executing.clone().acquire_owned()).await;
        drop(place);
        match waited {
            Ok(Ok(p)) => Ok(ExecutionSlot(p)),
            _ => {
                metrics.rejected(RejectReason::QueueTimeout);
                Err(busy_response(
                    "server busy: waited too long for an execution slot; retry later",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_share_out_exactly_the_slots_and_queue_places() {
        let wait = Duration::from_secs(1);
        for (lanes, slots, queue, expect) in [
            (1, 8, 256, vec![(8, 256)]),
            (2, 8, 256, vec![(4, 128), (4, 128)]),
            (2, 5, 3, vec![(3, 2), (2, 1)]),
            (3, 4, 1, vec![(2, 1), (1, 0), (1, 0)]),
            (4, 4, 0, vec![(1, 0); 4]),
        ] {
            let got: Vec<_> = Admission::per_lane(lanes, slots, queue, wait)
                .iter()
                .map(|a| (a.executing.available_permits(), a.max_queued))
                .collect();
            assert_eq!(got, expect, "{lanes} lanes, {slots} slots, {queue} queued");
        }
    }

    #[test]
    #[should_panic(expected = "3 lanes for 2 slots")]
    fn every_lane_needs_a_slot() {
        Admission::per_lane(3, 2, 10, Duration::from_secs(1));
    }
}
