//! Everything wasmtime, one concern per module: the engine's configuration and linker (here),
//! the compiled-module cache (`cache`), which wasi:http world a component serves (`world`), the
//! epoch ticker and deadlines (`epoch`), a guest's store and grants (`guest`), a version's
//! instance pool per serving thread (`lane`), instance lifetime and reuse (`worker`), outbound HTTP (`outbound`) and failure classification
//! (`failure`).
//!
//! One [`Runtime`] holds the `Engine` (pooling allocator, epoch interruption, wide-arithmetic,
//! component-model-async) and the `Linker` (WASI p2 + p3, wasi:http p2 + p3, and what
//! `capabilities` adds: Spin's interfaces and the WASI release candidates; imports nobody
//! provides are linked per component by `capabilities::link`).
//! [`Runtime::prepare`] does the slow work (hash, compile or load from the cache, link, detect
//! the world) and is only ever called beside the request path. A [`VersionHandler`] is what the
//! request path calls: it creates a fresh, isolated store and instance per request from the
//! pre-instantiated component (or reuses an instance when the component opts in).

mod cache;
mod epoch;
mod failure;
mod guest;
mod lane;
mod outbound;
mod output;
mod request;
mod worker;
mod world;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi_http::handler::ProxyPre;

pub use epoch::EPOCH_TICK;
pub use failure::{classify, Failure};
pub use guest::{GuestState, InstancePolicy, RequestData};
pub use lane::{current as current_lane, enter as enter_lane, VersionHandler};
pub use request::{CancelOnDrop, RequestTrace, SlotHold};
pub use world::World;

use crate::capabilities::{self, Grants, HostCapabilities};
use crate::metrics::Metrics;
use crate::spec::{CapabilityGrants, Sha256};

/// How much of each pooled linear memory stays resident between instances (see `pooling`):
/// enough for a Python interpreter's memory (a Spin-SDK component starts with an 18.6 MiB
/// heap snapshot and writes all over it), whose pages would otherwise be faulted in again,
/// each with a cross-core TLB shootdown, by every fresh instance. A slot keeps the first
/// `min(size of its memory, this)` bytes resident.
const KEEP_RESIDENT_BYTES: usize = 64 << 20;

/// Engine-wide settings, from the command line and `[application.tool.fnhost]`.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub pooling: bool,
    /// The largest memory any instance may have (the pooling allocator's slot size).
    pub max_memory_bytes: u64,
    pub cache_dir: PathBuf,
    /// Where host-owned guest state lives (the key-value database).
    pub state_dir: PathBuf,
    /// The key that signs compiled-module cache entries (see `cache.rs`).
    pub cache_key: [u8; 32],
    /// Epoch interruption (CPU-time deadlines and yielding). Off only to measure its cost:
    /// without it a guest in an endless loop holds its thread until it ends.
    pub epoch_deadlines: bool,
    /// Threads that serve public requests (see `lane`); every version gets a pool per lane.
    pub serving_lanes: usize,
}

pub struct Runtime {
    engine: Engine,
    epoch_deadlines: bool,
    serving_lanes: usize,
    linker: Linker<GuestState>,
    cache: cache::CompiledCache,
    capabilities: HostCapabilities,
    metrics: Arc<Metrics>,
    _ticker: Option<epoch::EpochTicker>,
}

/// A module compiled, linked and checked: ready to serve.
pub struct Prepared {
    pub sha256: Sha256,
    pub world: World,
    pub pre: ProxyPre<GuestState>,
    pub from_cache: bool,
    /// Interfaces the component imports that fnhost does not implement: linked to trap.
    pub unsupported_imports: Vec<String>,
}

impl Runtime {
    pub fn new(settings: &EngineSettings, metrics: Arc<Metrics>) -> Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true);
        config.wasm_component_model_async(true);
        config.wasm_wide_arithmetic(true);
        config.epoch_interruption(settings.epoch_deadlines);
        // No wasm backtraces: a trap becomes a 500 either way, and capturing them costs CPU on
        // every trap (and, for WASIp3, on every request when RUST_BACKTRACE is set).
        config.wasm_backtrace_max_frames(None);
        if settings.pooling {
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(
                settings.max_memory_bytes,
            )));
        }
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
        capabilities::add_to_linker(&mut linker)?;

        let cache = cache::CompiledCache::new(&settings.cache_dir, &engine, settings.cache_key)?;
        let ticker = settings
            .epoch_deadlines
            .then(|| epoch::EpochTicker::spawn(engine.clone()));
        Ok(Runtime {
            engine,
            epoch_deadlines: settings.epoch_deadlines,
            serving_lanes: settings.serving_lanes,
            linker,
            cache,
            capabilities: HostCapabilities::new(&settings.state_dir),
            metrics,
            _ticker: ticker,
        })
    }

    /// Compiles (or loads from the cache), links and checks a module. Slow: call it from a
    /// blocking task, never on the request path.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared> {
        let sha256 = Sha256::of(bytes);
        world::check_is_component(bytes)?;
        let (component, from_cache) =
            self.cache
                .load_or_compile(&self.engine, bytes, &sha256, &self.metrics)?;
        let (pre, unsupported_imports) = capabilities::link(&self.linker, &component)?;
        let (world, pre) = world::detect(pre, &component, &self.engine)?;
        Ok(Prepared {
            sha256,
            world,
            pre,
            from_cache,
            unsupported_imports,
        })
    }

    /// What a version's instances are granted (variables resolved now); fails for a version
    /// that cannot have its grants (a required variable without a value).
    pub fn grant(&self, grants: &CapabilityGrants) -> Result<Grants> {
        self.capabilities.grant(grants)
    }

    /// The request handler of one version: its instances get `policy`'s grants and limits.
    pub fn version_handler(
        &self,
        pre: ProxyPre<GuestState>,
        policy: InstancePolicy,
    ) -> VersionHandler {
        VersionHandler::new(
            guest::VersionState::new(
                self.engine.clone(),
                self.epoch_deadlines,
                pre,
                policy,
                self.metrics.clone(),
            ),
            self.serving_lanes,
        )
    }
}

fn pooling(max_memory_bytes: u64) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(1000);
    pool.total_core_instances(4000);
    pool.total_memories(2000);
    pool.total_tables(2000);
    pool.max_memory_size(max_memory_bytes as usize);
    pool.max_memories_per_component(4);
    pool.max_tables_per_component(8);
    pool.max_core_instances_per_component(32);
    // Reset the low pages of a slot in place (memset, or a copy from the memory image) instead
    // of madvise: a fresh instance per request then takes no page faults and causes no TLB
    // shootdowns for the memory it uses. (Batching the remaining decommits would keep whole
    // freed memories resident until a batch fills, so it stays off.)
    pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES);
    pool.table_keep_resident(64 << 10);
    // Reset the whole resident prefix, not only the pages PAGEMAP_SCAN reports as written:
    // wasmtime 48's scan stops after 32 runs of written pages and decommits everything after
    // the 32nd (wasmtime#14357), so an interpreter that writes all over its heap (CPython)
    // had most of it faulted in again by every fresh instance, at 2-3x the CPU per request
    // (bench/analysis.md). Small guests lose nothing measurable: their memories are a few MiB.
    pool.pagemap_scan(wasmtime::Enabled::No);
    pool
}
