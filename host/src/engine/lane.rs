//! Serving lanes: which of the public listener's serving threads the current thread is, and a
//! version's instance pool per lane.
//!
//! fnhost serves public requests on one single-threaded async runtime per core (a lane,
//! started by `http::lanes`) rather than on one work-stealing runtime: a request, the instance
//! that runs it and its response then stay on the thread that accepted the connection, with no
//! cross-thread wake-up per request (measured in bench/analysis.md). For that, each version has
//! one wasmtime-wasi-http `ProxyHandler` per lane: a handler queues requests for its instances
//! and spawns them on the runtime that asks, so a handler shared by two lanes would hand
//! requests across threads again. Threads that are not lanes (start-up, the admin API's smoke
//! requests) share one more handler of their own.

use std::cell::Cell;
use std::sync::Arc;

use wasmtime_wasi_http::handler::{HandlerState, Instance, ProxyHandler};

use super::guest::{GuestState, RequestData, VersionState};
use super::worker::{Expiration, Worker};

thread_local! {
    static LANE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Marks the current thread as serving lane `lane` (0-based) for the rest of its life.
pub fn enter(lane: usize) {
    LANE.set(lane);
}

/// The serving lane the current thread is (`None` off the lanes).
pub fn current() -> Option<usize> {
    Some(LANE.get()).filter(|&lane| lane != usize::MAX)
}

/// Handles requests for one version of one component: one instance pool per lane.
pub struct VersionHandler {
    state: Arc<VersionState>,
    /// One per lane, and the last for threads that are not lanes.
    lanes: Box<[ProxyHandler<LaneState>]>,
}

impl VersionHandler {
    pub(super) fn new(state: VersionState, lanes: usize) -> VersionHandler {
        let state = Arc::new(state);
        VersionHandler {
            lanes: (0..=lanes)
                .map(|_| ProxyHandler::new(LaneState(state.clone())))
                .collect(),
            state,
        }
    }

    pub fn state(&self) -> &VersionState {
        &self.state
    }

    /// Runs `req` on an instance of this version that lives on the calling thread's lane.
    pub async fn handle(
        &self,
        data: RequestData,
        req: wasmtime_wasi_http::handler::Request,
    ) -> wasmtime::Result<wasmtime_wasi_http::handler::Response> {
        let lane = LANE.get().min(self.lanes.len() - 1);
        self.lanes[lane].handle(data, req).await
    }
}

/// A lane's view of a version: what its `ProxyHandler` instantiates from.
pub struct LaneState(Arc<VersionState>);

impl HandlerState for LaneState {
    type StoreData = GuestState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<GuestState, Expiration, Worker>> {
        self.0.instantiate().await
    }
}
