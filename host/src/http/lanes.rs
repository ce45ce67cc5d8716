//! The public listener's serving threads (lanes): one single-threaded tokio runtime per
//! thread, all accepting from the same listening socket, each serving the connections it
//! accepted from first byte to last on its own thread (`engine::lane` says why, and gives each
//! lane its own instances).
//!
//! Lanes take turns by open connections: a lane accepts only while no other lane has fewer
//! open, so a burst of new connections is spread evenly instead of being drained from the
//! backlog by whichever lane woke first (seen: one lane with all 16 of a benchmark's
//! connections, the other idle). Among lanes with equally many, the one waiting on the socket
//! wins: a busy lane polls it later. A guest that computes for long yields to its lane's other
//! connections at every epoch tick (`engine::epoch`). The cap on open connections is one
//! semaphore for all lanes. No lane accepts before every lane's thread runs, so a host that
//! answered once serves on all of them.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use super::response::ResponseBody;
use super::serve::{serve, Connection};
use crate::spec::AppLimits;

/// Starts `lanes` threads serving `listener` with `service` until `shutdown` fires; each
/// returns once its connections are done (bounded by `drain`).
pub fn spawn<S, F>(
    listener: TcpListener,
    lanes: usize,
    limits: &AppLimits,
    service: S,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    drain: Duration,
) -> Result<Vec<JoinHandle<()>>>
where
    S: Fn(Request<Incoming>, &Connection) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let listener = listener.into_std().context("taking the public listener")?;
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(OpenConnections {
        per_lane: (0..lanes).map(|_| AtomicUsize::new(0)).collect(),
        changed: Notify::new(),
    });
    // A thread takes its name (and its lane) only once it first runs; on a busy machine that
    // can be after another lane has answered (seen: a CI run found no `fnhost-lane-1` after
    // the first answer). Each lane waits for the others before it accepts.
    let all_running = Arc::new(Barrier::new(lanes));
    let mut threads = Vec::with_capacity(lanes);
    for lane in 0..lanes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building a serving thread's runtime")?;
        // Registered with this lane's reactor: the lane's own epoll set watches the socket.
        let listener = {
            let _in_lane = rt.enter();
            TcpListener::from_std(
                listener
                    .try_clone()
                    .context("sharing the public listener")?,
            )
            .context("sharing the public listener")?
        };
        let (limits, service, shutdown) = (limits.clone(), service.clone(), shutdown.clone());
        let (connections, open) = (connections.clone(), open.clone());
        let all_running = all_running.clone();
        let thread = std::thread::Builder::new()
            .name(format!("fnhost-lane-{lane}"))
            .spawn(move || {
                crate::engine::enter_lane(lane);
                all_running.wait();
                let turn = LaneTurn { open, lane };
                rt.block_on(serve(
                    listener,
                    None,
                    limits,
                    connections,
                    Some(turn),
                    service,
                    shutdown,
                    drain,
                ));
            })
            .context("starting a serving thread")?;
        threads.push(thread);
    }
    Ok(threads)
}

/// How many connections each lane has open.
struct OpenConnections {
    per_lane: Box<[AtomicUsize]>,
    /// Woken whenever a count changes, for lanes waiting their turn.
    changed: Notify,
}

impl OpenConnections {
    fn is_turn_of(&self, lane: usize) -> bool {
        let mine = self.per_lane[lane].load(Ordering::Relaxed);
        self.per_lane
            .iter()
            .all(|n| n.load(Ordering::Relaxed) >= mine)
    }
}

/// One lane's place in the turn-taking.
pub struct LaneTurn {
    open: Arc<OpenConnections>,
    lane: usize,
}

impl LaneTurn {
    /// Returns once no other lane has fewer connections open than this one.
    pub async fn wait(&self) {
        loop {
            let changed = self.open.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change right after it still wakes this lane.
            changed.as_mut().enable();
            if self.open.is_turn_of(self.lane) {
                return;
            }
            changed.await;
        }
    }

    /// Counts a connection this lane accepted, until the returned value is dropped.
    pub fn opened(&self) -> LaneConnection {
        self.open.per_lane[self.lane].fetch_add(1, Ordering::Relaxed);
        // Another lane may have been waiting for this one to catch up.
        self.open.changed.notify_waiters();
        LaneConnection {
            open: self.open.clone(),
            lane: self.lane,
        }
    }
}

/// An open connection, counted on its lane.
pub struct LaneConnection {
    open: Arc<OpenConnections>,
    lane: usize,
}

impl Drop for LaneConnection {
    fn drop(&mut self) {
        self.open.per_lane[self.lane].fetch_sub(1, Ordering::Relaxed);
        self.open.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lanes(n: usize) -> Vec<LaneTurn> {
        let open = Arc::new(OpenConnections {
            per_lane: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            changed: Notify::new(),
        });
        (0..n)
            .map(|lane| LaneTurn {
                open: open.clone(),
                lane,
            })
            .collect()
    }

    #[test]
    fn a_lane_waits_while_another_has_fewer_connections_open() {
        let l = lanes(3);
        assert!((0..3).all(|i| l[0].open.is_turn_of(i)), "all level");
        let a = l[0].opened();
        assert!(!l[0].open.is_turn_of(0));
        assert!(l[0].open.is_turn_of(1) && l[0].open.is_turn_of(2));
        let b = l[1].opened();
        let _c = l[2].opened();
        assert!((0..3).all(|i| l[0].open.is_turn_of(i)), "level again");
        drop(a);
        assert!(l[0].open.is_turn_of(0));
        assert!(!l[0].open.is_turn_of(1) && !l[0].open.is_turn_of(2));
        drop(b);
        assert!(l[0].open.is_turn_of(0) && l[0].open.is_turn_of(1));
        assert!(!l[0].open.is_turn_of(2));
    }

    #[tokio::test]
    async fn a_waiting_lane_wakes_when_another_closes_a_connection() {
        let l = lanes(2);
        let first = l[1].opened();
        let _second = l[0].opened();
        let _third = l[0].opened();
        let waiting = async { l[0].wait().await };
        tokio::pin!(waiting);
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "two open against one: not lane 0's turn"
        );
        drop(first);
        assert!(
            futures::poll!(waiting.as_mut()).is_pending(),
            "two against none"
        );
        let _fourth = l[1].opened();
        let _fifth = l[1].opened();
        assert!(
            futures::poll!(waiting.as_mut()).is_ready(),
            "level: lane 0's turn"
        );
    }
}
