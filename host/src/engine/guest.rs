//! One guest instance: its store data (WASI, wasi:http, granted files and environment, memory
//! limit, CPU deadline, recorded faults), how a store is built for a version, and the
//! per-version handler state that wasmtime-wasi-http's `ProxyHandler` instantiates from.
//!
//! A store is isolated: no stdin, no inherited environment, arguments or network; only what
//! the version's spec grants. A fresh store per request is the default; a WASIp3 component may
//! opt into reuse (`instance_reuse`), see `worker.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{Instance, ProxyPre};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::epoch;
use super::failure::{InstanceFaults, MemoryLimitExceeded};
use super::outbound::OutboundPolicy;
use super::output::GuestOutput;
use super::request::{InstanceRequests, RequestTrace};
use super::worker::{Expiration, Worker};
use crate::capabilities::{CapabilitiesCtx, CapabilitiesView, Grants, InstanceCapabilities};
use crate::metrics::Metrics;
use crate::spec::{ComponentId, FileMount, OutboundHost};

/// What a guest is granted and how it is limited; fixed per version.
#[derive(Debug, Clone)]
pub struct InstancePolicy {
    pub component: ComponentId,
    pub files: Vec<FileMount>,
    pub environment: Vec<(String, String)>,
    pub allowed_outbound_hosts: Vec<OutboundHost>,
    pub memory_limit_bytes: u64,
    pub request_timeout: Duration,
    /// Requests one instance may serve (1 = fresh instance per request).
    pub instance_reuse: u32,
    /// Variables, key-value stores (see `capabilities`).
    pub grants: Grants,
}

/// The data of one store: one instance's WASI state, limits and deadline.
pub struct GuestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundPolicy,
    capabilities: InstanceCapabilities,
    limits: GuestLimits,
    /// When the newest request on this instance must have answered (CPU-time deadline).
    pub(super) deadline: Instant,
    pub(super) faults: Arc<InstanceFaults>,
    pub(super) requests: Arc<InstanceRequests>,
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl CapabilitiesView for GuestState {
    fn capabilities(&mut self) -> CapabilitiesCtx<'_> {
        CapabilitiesCtx {
            state: &mut self.capabilities,
            table: &mut self.table,
        }
    }
}

/// The memory limit of one instance, across all its linear memories together (a component
/// may have several core instances, each with its own memory). Growth past it traps with
/// [`MemoryLimitExceeded`] and is recorded in the instance's faults, so the request gets
/// "exceeded its memory limit" even when the trap reaches it only as a dead worker.
struct GuestLimits {
    memory_limit_bytes: usize,
    /// Bytes of linear memory the instance's memories hold now (wasmtime asks this limiter
    /// for every memory's creation and growth).
    memory_bytes: usize,
    /// The last growth approved, taken back if it then fails.
    last_growth: usize,
    faults: Arc<InstanceFaults>,
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = desired.saturating_sub(current);
        let total = self.memory_bytes.saturating_add(growth);
        if total > self.memory_limit_bytes {
            self.faults.memory_limit_hit();
            return Err(MemoryLimitExceeded {
                desired_bytes: total,
                limit_bytes: self.memory_limit_bytes,
            }
            .into());
        }
        self.memory_bytes = total;
        self.last_growth = growth;
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.memory_bytes -= self.last_growth;
        self.last_growth = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Tables are bounded by the pooling allocator's slots.
        Ok(true)
    }
}

/// What the request path passes with each request into the handler.
pub type RequestData = Arc<RequestTrace>;

/// What the instances of one version are made from: its pre-instantiated component, grants
/// and limits (shared by the version's lanes, see `lane`).
pub struct VersionState {
    engine: Engine,
    epoch_deadlines: bool,
    pre: ProxyPre<GuestState>,
    policy: InstancePolicy,
    metrics: Arc<Metrics>,
}

impl VersionState {
    pub(super) fn new(
        engine: Engine,
        epoch_deadlines: bool,
        pre: ProxyPre<GuestState>,
        policy: InstancePolicy,
        metrics: Arc<Metrics>,
    ) -> VersionState {
        VersionState {
            engine,
            epoch_deadlines,
            pre,
            policy,
            metrics,
        }
    }

    pub fn request_timeout(&self) -> Duration {
        self.policy.request_timeout
    }

    fn new_store(&self) -> Result<Store<GuestState>> {
        let p = &self.policy;
        let requests = Arc::new(InstanceRequests::default());
        let output = GuestOutput::new(p.component.clone(), requests.clone());
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&p.environment);
        wasi.stdout(output.stdout());
        wasi.stderr(output.stderr());
        // Granted files are small, local and read-only (models, data): reading them on the
        // executor thread costs microseconds, whereas a `spawn_blocking` hand-off per file
        // operation costs two thread wake-ups (measured: 2.7x fewer requests/s for iris).
        wasi.allow_blocking_current_thread(true);
        for mount in &p.files {
            wasi.preopened_dir(&mount.source, &mount.destination, FsPerms::ReadOnly)
                .map_err(anyhow::Error::from)
                .with_context(|| {
                    format!(
                        "granting {} as {}",
                        mount.source.display(),
                        mount.destination
                    )
                })?;
        }
        let faults = Arc::new(InstanceFaults::default());
        let state = GuestState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundPolicy::new(&p.allowed_outbound_hosts),
            capabilities: p.grants.instance(),
            limits: GuestLimits {
                memory_limit_bytes: usize::try_from(p.memory_limit_bytes).unwrap_or(usize::MAX),
                memory_bytes: 0,
                last_growth: 0,
                faults: faults.clone(),
            },
            deadline: Instant::now() + p.request_timeout,
            faults,
            requests,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        if self.epoch_deadlines {
            epoch::install_deadline(&mut store);
        }
        Ok(store)
    }
}

impl VersionState {
    /// A new store and instance: what wasmtime-wasi-http's `ProxyHandler` asks a lane for.
    pub(super) async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<GuestState, Expiration, Worker>> {
        let started = Instant::now();
        let mut store = self.new_store().map_err(wasmtime::Error::from_anyhow)?;
        let faults = store.data().faults.clone();
        let requests = store.data().requests.clone();
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.metrics.instantiated(started.elapsed().as_secs_f64());
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration::new(self.policy.request_timeout, faults, requests),
            state: Worker::new(
                self.policy.instance_reuse,
                matches!(self.pre, ProxyPre::P3(_)),
                self.policy.request_timeout,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_limit_covers_all_memories_together() {
        let faults = Arc::new(InstanceFaults::default());
        let mut limits = GuestLimits {
            memory_limit_bytes: 10 << 20,
            memory_bytes: 0,
            last_growth: 0,
            faults: faults.clone(),
        };
        // Two memories of 4 MiB each fit; growing the first by 3 MiB more does not.
        assert!(limits.memory_growing(0, 4 << 20, None).unwrap());
        assert!(limits.memory_growing(0, 4 << 20, None).unwrap());
        let err = limits.memory_growing(4 << 20, 7 << 20, None).unwrap_err();
        assert!(err.downcast_ref::<MemoryLimitExceeded>().is_some());
        // A growth that wasmtime then fails is taken back.
        assert!(limits.memory_growing(4 << 20, 5 << 20, None).unwrap());
        limits
            .memory_grow_failed(wasmtime::Error::msg("mmap failed"))
            .unwrap();
        assert!(limits.memory_growing(4 << 20, 6 << 20, None).unwrap());
        assert_eq!(limits.memory_bytes, 10 << 20);
    }
}
