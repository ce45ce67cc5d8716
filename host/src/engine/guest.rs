//! One guest instance: its store data (WASI, wasi:http, granted files and environment, memory
//! limit, CPU deadline, recorded faults), how a store is built for a version, and the
//! per-version handler state that wasmtime-wasi-http's `ProxyHandler` instantiates from.
//!
//! A store is isolated: no stdin, no inherited environment, arguments or network; only what
//! the version's spec grants. A fresh store per request is the default; a WASIp3 component may
//! opt into reuse (`instance_reuse`), see `worker.rs`.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{HandlerState, Instance, ProxyHandler, ProxyPre};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::epoch;
use super::failure::{InstanceFaults, MemoryLimitExceeded};
use super::outbound::OutboundPolicy;
use super::worker::{Expiration, Worker};
use crate::capabilities::{CapabilitiesCtx, CapabilitiesView, Grants, InstanceCapabilities};
use crate::metrics::Metrics;
use crate::spec::{FileMount, OutboundHost};

/// What a guest is granted and how it is limited; fixed per version.
#[derive(Debug, Clone)]
pub struct InstancePolicy {
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

/// The memory limit of one instance. Growth past it traps with [`MemoryLimitExceeded`] and is
/// recorded in the instance's faults, so the request gets "exceeded its memory limit" even when
/// the trap reaches it only as a dead worker.
struct GuestLimits {
    memory_limit_bytes: usize,
    faults: Arc<InstanceFaults>,
}

impl ResourceLimiter for GuestLimits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit_bytes {
            self.faults.memory_limit_hit();
            return Err(MemoryLimitExceeded {
                desired_bytes: desired,
                limit_bytes: self.memory_limit_bytes,
            }
            .into());
        }
        Ok(true)
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

/// Ties one request to the faults of the instance that runs it (set when the worker accepts
/// the request), so a failure can be classified after the instance is gone.
#[derive(Debug, Default)]
pub struct RequestTrace(OnceLock<Arc<InstanceFaults>>);

impl RequestTrace {
    pub(super) fn ran_on(&self, faults: &Arc<InstanceFaults>) {
        let _ = self.0.set(faults.clone());
    }

    pub fn faults(&self) -> Option<&InstanceFaults> {
        self.0.get().map(|f| &**f)
    }
}

/// What the request path passes with each request into the handler.
pub type RequestData = Arc<RequestTrace>;

/// Handles requests for one version of one component.
pub type VersionHandler = ProxyHandler<VersionState>;

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
        let mut wasi = WasiCtxBuilder::new();
        wasi.envs(&p.environment);
        wasi.inherit_stdout().inherit_stderr();
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
                faults: faults.clone(),
            },
            deadline: Instant::now() + p.request_timeout,
            faults,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        if self.epoch_deadlines {
            epoch::install_deadline(&mut store);
        }
        Ok(store)
    }
}

impl HandlerState for VersionState {
    type StoreData = GuestState;
    type WorkerExpiration = Expiration;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<GuestState, Expiration, Worker>> {
        let started = Instant::now();
        let mut store = self.new_store().map_err(wasmtime::Error::from_anyhow)?;
        let faults = store.data().faults.clone();
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.metrics.instantiated(started.elapsed().as_secs_f64());
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration::new(self.policy.request_timeout, faults),
            state: Worker::new(self.policy.instance_reuse, self.policy.request_timeout),
        })
    }
}
