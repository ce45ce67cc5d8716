//! The one epoch ticker of the engine, and what a store does at each tick.
//!
//! One thread increments the engine's epoch every [`EPOCH_TICK`], so timeouts cost no thread
//! or timer per request. At each tick a running guest either stops (past its deadline: the
//! fault is recorded, then the guest traps with `Trap::Interrupt` → 504) or yields to the async
//! executor so that a long computation never starves other requests on its thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Engine, Store, UpdateDeadline};

use super::guest::GuestState;

/// How often the epoch ticker fires: the granularity of timeouts and of yielding a long-running
/// guest back to the async executor.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    pub fn spawn(engine: Engine) -> EpochTicker {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("fnhost-epoch".into())
            .spawn({
                let stop = stop.clone();
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                }
            })
            .expect("spawning the epoch ticker thread");
        EpochTicker {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Every tick: past the deadline → record it and trap (504); every request on the instance
/// cancelled (their clients gone) → trap, nobody waits; otherwise yield so a long
/// computation never starves the other requests on this executor thread. The yield goes
/// through `tokio::task::yield_now`, which reschedules the guest only after the worker has
/// polled the I/O driver: a plain `Yield` wakes the task at once, tokio runs it again from its
/// LIFO slot and polls the driver only every 61 scheduler ticks (~0.6 s of 10 ms slices), so
/// new connections on that thread waited for the computation anyway.
pub fn install_deadline(store: &mut Store<GuestState>) {
    store.epoch_deadline_callback(|ctx| {
        let state = ctx.data();
        if Instant::now() >= state.deadline {
            state.faults.deadline_hit();
            Ok(UpdateDeadline::Interrupt)
        } else if state.requests.abandoned() {
            state.faults.cancelled_hit();
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::YieldCustom(
                1,
                Box::pin(tokio::task::yield_now()),
            ))
        }
    });
    store.set_epoch_deadline(1);
}
