//! Why a guest failed to produce a response, and the status code that says so.
//!
//! A failure is classified from typed facts only: the handler's own error types
//! (`ExpirationError`, `InstantiationError`), a `Trap` in the error chain, our
//! [`MemoryLimitExceeded`], and the [`InstanceFaults`] the memory limiter and the epoch callback
//! record where they happen. The facts matter because a trap in a WASIp3 worker reaches the
//! caller only as `TrapOrPanicError`, with no cause attached.

use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::Trap;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Ran past its request timeout → 504.
    Timeout,
    /// Memory limit reached → 500.
    OutOfMemory,
    /// Any other trap, panic or missing response → 500.
    Trap,
    /// No instance could be created (pool exhausted, ...) → 503.
    Unavailable,
}

/// What stopped one instance, recorded at the source.
#[derive(Debug, Default)]
pub struct InstanceFaults {
    memory_limit: AtomicBool,
    deadline: AtomicBool,
    cancelled: AtomicBool,
}

impl InstanceFaults {
    pub fn memory_limit_hit(&self) {
        self.memory_limit.store(true, Ordering::Relaxed);
    }

    pub fn deadline_hit(&self) {
        self.deadline.store(true, Ordering::Relaxed);
    }

    /// Stopped because every request on the instance was cancelled (nobody waits for an answer).
    pub fn cancelled_hit(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    pub fn was_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// The error a guest's memory growth gets when it would pass the limit.
#[derive(Debug)]
pub struct MemoryLimitExceeded {
    pub desired_bytes: usize,
    pub limit_bytes: usize,
}

impl std::fmt::Display for MemoryLimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "memory limit exceeded: the guest's linear memories would hold {} bytes, the limit is {}",
            self.desired_bytes, self.limit_bytes
        )
    }
}

impl std::error::Error for MemoryLimitExceeded {}

/// Classifies the error a handler returned; `faults` are those of the instance the request ran
/// on, when it got that far.
pub fn classify(error: &wasmtime::Error, faults: Option<&InstanceFaults>) -> Failure {
    if error.downcast_ref::<ExpirationError>().is_some() {
        return Failure::Timeout;
    }
    if error
        .downcast_ref::<InstantiationError<crate::engine::RequestData>>()
        .is_some()
    {
        return Failure::Unavailable;
    }
    if let Some(f) = faults {
        if f.deadline.load(Ordering::Relaxed) {
            return Failure::Timeout;
        }
        if f.memory_limit.load(Ordering::Relaxed) {
            return Failure::OutOfMemory;
        }
    }
    for cause in error.chain() {
        if cause.downcast_ref::<MemoryLimitExceeded>().is_some() {
            return Failure::OutOfMemory;
        }
        if let Some(trap) = cause.downcast_ref::<Trap>() {
            return match trap {
                Trap::Interrupt => Failure::Timeout,
                _ => Failure::Trap,
            };
        }
    }
    Failure::Trap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let trap = || wasmtime::Error::from(Trap::UnreachableCodeReached);
        let oom = || {
            wasmtime::Error::from(MemoryLimitExceeded {
                desired_bytes: 2,
                limit_bytes: 1,
            })
        };
        let plain = || wasmtime::Error::msg("worker trapped or panicked");
        let deadline = InstanceFaults::default();
        deadline.deadline_hit();
        let memory = InstanceFaults::default();
        memory.memory_limit_hit();
        let clean = InstanceFaults::default();
        let cases: Vec<(wasmtime::Error, Option<&InstanceFaults>, Failure)> = vec![
            (ExpirationError.into(), None, Failure::Timeout),
            (
                wasmtime::Error::from(Trap::Interrupt),
                None,
                Failure::Timeout,
            ),
            (trap(), None, Failure::Trap),
            (oom(), None, Failure::OutOfMemory),
            (oom().context("in the guest"), None, Failure::OutOfMemory),
            (plain(), Some(&deadline), Failure::Timeout),
            (plain(), Some(&memory), Failure::OutOfMemory),
            (plain(), Some(&clean), Failure::Trap),
            (plain(), None, Failure::Trap),
        ];
        for (i, (error, faults, want)) in cases.into_iter().enumerate() {
            assert_eq!(classify(&error, faults), want, "case {i}: {error:#}");
        }
    }
}
