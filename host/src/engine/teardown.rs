//! Where an instance's store is dropped. Dropping a store hands its memory slots back to the
//! pooling allocator, which resets them in place (a copy of the memory image over the slot's
//! resident prefix, see `pooling` in `mod.rs`). For a small guest that is microseconds; for an
//! interpreter with an 18.6 MiB heap snapshot (a Spin-SDK Python component) it is about 2 ms of
//! copying, and it ran on the executor thread that was about to finish the response or take
//! the next request: with a fresh instance per request, one connection waited for the previous
//! instance's reset before its own request ran. A store whose memories add up to at least
//! [`LARGE_MEMORY_BYTES`] is therefore handed to a thread of its own ("fnhost-teardown");
//! smaller ones are dropped where they end, because there the hand-off (a channel send and a
//! thread wake-up) costs more than the reset (measured: handing off every iris store cost 8%
//! of the fresh requests/s at 16 connections).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use anyhow::{Context, Result};
use wasmtime::Store;

use super::guest::GuestState;

/// Memories at least this large are reset off the request path: 8 MiB is about a millisecond
/// of copying on the machines measured (bench/analysis.md).
pub const LARGE_MEMORY_BYTES: usize = 8 << 20;

/// The channel has no buffer: the teardown thread takes a store only when it is idle, waiting
/// in `recv`; otherwise the worker drops its store itself. A store waiting in a queue would
/// hold its memory slot, so the next instances would take other slots, each faulting its heap
/// in once before it stays resident: with a queue of 8 and one connection to a Python
/// component, about ten slots (and 200 MiB) came into use, where the idle-only hand-off keeps
/// the reset off the request path with the fewest slots.
const BACKLOG: usize = 0;

/// The sending side of the teardown thread; cloned into every version's instances. The
/// thread ends when the last clone is dropped.
#[derive(Clone)]
pub struct Teardown {
    large: SyncSender<Store<GuestState>>,
}

impl Teardown {
    /// Starts the teardown thread. Call it inside the tokio runtime: the thread enters it, as
    /// a store's host state (timers, sockets) may be dropped with it.
    pub fn spawn() -> Result<Teardown> {
        let (large, stores) = sync_channel(BACKLOG);
        let runtime = tokio::runtime::Handle::try_current().ok();
        std::thread::Builder::new()
            .name("fnhost-teardown".into())
            .spawn(move || {
                let _entered = runtime.as_ref().map(|r| r.enter());
                drop_all(stores)
            })
            .context("starting the instance teardown thread")?;
        Ok(Teardown { large })
    }

    /// Drops `store` here, or on the teardown thread if its memories are large and the
    /// thread is idle.
    pub fn drop_store(&self, store: Store<GuestState>) {
        if store.data().memory_bytes() < LARGE_MEMORY_BYTES {
            return drop(store);
        }
        match self.large.try_send(store) {
            Ok(()) => {}
            Err(TrySendError::Full(store) | TrySendError::Disconnected(store)) => drop(store),
        }
    }
}

fn drop_all(stores: Receiver<Store<GuestState>>) {
    for store in stores {
        drop(store);
    }
}
