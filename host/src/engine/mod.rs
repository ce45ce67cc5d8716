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
/// each with a cross-core TLB shootdown, by every fresh instance. Of a slot's first
/// `min(size of its memory, this)` bytes, the pages an instance wrote stay resident and are
/// copied back from the image (or zeroed) for the next one; on a kernel without
/// `PAGEMAP_SCAN` (before Linux 6.7) all of them are.
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
    /// Which profiler, if any, learns the names of compiled guest functions.
    pub profile: Option<Profile>,
}

/// A profiler the engine describes its compiled code to (`fnhost up --profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// /tmp/perf-PID.map, read by Linux `perf report`.
    Perfmap,
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
        if settings.profile == Some(Profile::Perfmap) {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
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
    // Of that prefix, reset only the pages the last instance wrote, found with the kernel's
    // PAGEMAP_SCAN, not all of it: a fresh CPython instance writes about 1.2 of its 18.6 MiB.
    // This relies on the vendored wasmtime's scan (vendor/README.md): upstream 48's stops
    // after 32 runs of written pages and decommits the rest, which had CPython's heap faulted
    // in again by every fresh instance, and it skips written pages that were swapped out.
    // `Auto`: where the kernel has no PAGEMAP_SCAN, the whole prefix is reset instead.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::{Instance, Module, Store};

    /// One 64 KiB page of a linear memory whose first bytes come from a data segment (so the
    /// slot maps the module's memory image there) and whose other host pages start as zeros.
    const GUEST: &str = r#"(module
        (memory (export "memory") 1)
        (data (i32.const 0) "image bytes")
        (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
        (func (export "load") (param i32) (result i32) local.get 0 i32.load))"#;

    /// Where the kernel keeps the page at `addr`: bit 62 of its `/proc/self/pagemap` entry is
    /// "swapped".
    fn swapped(addr: usize) -> bool {
        use std::os::unix::fs::FileExt;
        let page = host_page_size();
        let mut entry = [0u8; 8];
        std::fs::File::open("/proc/self/pagemap")
            .unwrap()
            .read_exact_at(&mut entry, (addr / page * 8) as u64)
            .unwrap();
        u64::from_le_bytes(entry) & (1 << 62) != 0
    }

    fn host_page_size() -> usize {
        // SAFETY: sysconf has no preconditions.
        unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
    }

    /// A fresh instance must not see what the slot's last instance wrote, even where the
    /// kernel swapped the written page out before the slot was reset (which wasmtime 48's
    /// written-page scan skipped: vendor/README.md). Needs swap (`cargo xtask test` turns a
    /// swap file on when the machine has none).
    #[test]
    fn a_written_page_swapped_out_is_reset_for_the_next_instance() {
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling(1 << 20)));
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wat::parse_str(GUEST).unwrap()).unwrap();
        let page = host_page_size();
        // In the image's page, and in a page of zeros.
        let offsets = [4, 3 * page as i32 + 8];

        let run = |secret: Option<i32>| -> (usize, Vec<i32>) {
            let mut store = Store::new(&engine, ());
            let instance = Instance::new(&mut store, &module, &[]).unwrap();
            let memory = instance.get_memory(&mut store, "memory").unwrap();
            let load = instance
                .get_typed_func::<i32, i32>(&mut store, "load")
                .unwrap();
            let store_fn = instance
                .get_typed_func::<(i32, i32), ()>(&mut store, "store")
                .unwrap();
            let base = memory.data_ptr(&store) as usize;
            let seen = offsets
                .iter()
                .map(|&at| load.call(&mut store, at).unwrap())
                .collect();
            if let Some(secret) = secret {
                for &at in &offsets {
                    store_fn.call(&mut store, (at, secret)).unwrap();
                    let addr = (base + at as usize) / page * page;
                    // SAFETY: the page lies in this instance's memory, which stays mapped;
                    // MADV_PAGEOUT only asks the kernel to reclaim it, keeping its contents.
                    let rc = unsafe {
                        libc::madvise(addr as *mut libc::c_void, page, libc::MADV_PAGEOUT)
                    };
                    assert_eq!(
                        rc,
                        0,
                        "madvise(MADV_PAGEOUT): {}",
                        std::io::Error::last_os_error()
                    );
                    assert!(
                        swapped(addr),
                        "the page at offset {at} was not swapped out: this test needs swap \
                         (`cargo xtask test` turns on a swap file when the machine has none)"
                    );
                }
            }
            (base, seen)
        };

        let (first_slot, initial) = run(Some(0x5ec2e7));
        let (second_slot, seen) = run(None);
        assert_eq!(
            first_slot, second_slot,
            "the second instance must reuse the slot"
        );
        assert_ne!(initial[0], 0, "the first offset lies in the memory image");
        assert_eq!(initial[1], 0);
        assert_eq!(
            seen, initial,
            "a fresh instance read what the last one wrote"
        );
    }
}
