//! Everything wasmtime: the engine configuration, compiling with an on-disk cache, detecting a
//! component's wasi:http world, and the per-version request handler.
//!
//! One [`Runtime`] holds the `Engine` (pooling allocator, epoch interruption driven by one
//! ticker thread, wide-arithmetic), the `Linker` with WASI p2 + p3 and wasi:http p2 + p3, and
//! the compiled-module cache keyed by the module's sha256 and the engine's compatibility hash.
//! [`Runtime::prepare`] does the slow work (hash, compile or load from cache, link, detect the
//! world) and is only ever called beside the request path. [`VersionHandler`] is what the request
//! path calls: it creates a fresh, isolated store + instance per request from the
//! pre-instantiated component (or reuses a WASIp3 instance when the component opts in).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, GuestTaskId, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreContextMut,
    StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, ProxyHandler, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use crate::manifest::FileMount;
use crate::metrics::Metrics;

/// How often the epoch ticker fires: the granularity of timeouts and of yielding a long-running
/// guest back to the async executor.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How much of each pooled linear memory stays resident between instances (see `Runtime::new`).
const KEEP_RESIDENT_BYTES: usize = 4 << 20;

/// Engine-wide settings, from the command line and `[application.tool.fnhost]`.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    pub pooling: bool,
    /// The largest memory any instance may have (the pooling allocator's slot size).
    pub max_memory_bytes: u64,
    pub cache_dir: PathBuf,
    /// Epoch interruption (CPU-time deadlines and yielding). Off only to measure its cost:
    /// without it a guest in an endless loop holds its thread until it ends.
    pub epoch_deadlines: bool,
}

/// Which wasi:http world a component exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `wasi:http/handler@0.3.x` (spin-sdk 7).
    P3,
    /// `wasi:http/incoming-handler@0.2.x` (spin-sdk 5, `wasmtime serve` examples).
    P2,
}

impl World {
    pub fn as_str(self) -> &'static str {
        match self {
            World::P3 => "wasi:http/handler@0.3",
            World::P2 => "wasi:http/incoming-handler@0.2",
        }
    }
}

pub struct Runtime {
    engine: Engine,
    epoch_deadlines: bool,
    linker: Linker<GuestState>,
    cache_dir: PathBuf,
    metrics: Arc<Metrics>,
    _ticker: Option<EpochTicker>,
}

/// A module compiled, linked and checked: ready to serve.
pub struct Prepared {
    pub sha256: String,
    pub world: World,
    pub pre: ProxyPre<GuestState>,
    pub from_cache: bool,
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
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(1000);
            pool.total_core_instances(4000);
            pool.total_memories(2000);
            pool.total_tables(2000);
            pool.max_memory_size(settings.max_memory_bytes as usize);
            pool.max_memories_per_component(4);
            pool.max_tables_per_component(8);
            pool.max_core_instances_per_component(32);
            // Reset the low pages of a slot with memset (only those actually touched, found with
            // PAGEMAP_SCAN where the kernel has it) instead of madvise: a fresh instance per
            // request then takes no page faults and causes no TLB shootdowns for the memory a
            // typical request uses. (Batching the remaining decommits would keep whole freed
            // memories resident until a batch fills, so it stays off.)
            pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES);
            pool.table_keep_resident(64 << 10);
            pool.pagemap_scan(wasmtime::Enabled::Auto);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("creating the wasmtime engine")?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        wasmtime_wasi::p3::add_to_linker(&mut linker)?;
        wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;

        std::fs::create_dir_all(&settings.cache_dir).with_context(|| {
            format!(
                "creating the compiled-module cache {}",
                settings.cache_dir.display()
            )
        })?;
        let ticker = settings
            .epoch_deadlines
            .then(|| EpochTicker::spawn(engine.clone()));
        Ok(Runtime {
            engine,
            epoch_deadlines: settings.epoch_deadlines,
            linker,
            cache_dir: settings.cache_dir.clone(),
            metrics,
            _ticker: ticker,
        })
    }

    /// Compiles (or loads from the cache), links and checks a module. Slow: call it from a
    /// blocking task, never on the request path.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        if !wasmparser_is_component(bytes) {
            bail!("not a WebAssembly component (a core module or another file); build it for wasm32-wasip2");
        }
        let (component, from_cache) = self.compile_cached(bytes, &sha256)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("cannot link the component")?;
        let (world, pre) = match wasmtime_wasi_http::p3::bindings::ServicePre::new(pre.clone()) {
            Ok(p3) => (World::P3, ProxyPre::P3(p3)),
            Err(_) => match wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre) {
                Ok(p2) => (World::P2, ProxyPre::P2(p2)),
                Err(_) => {
                    let exports: Vec<String> = component
                        .component_type()
                        .exports(&self.engine)
                        .map(|(name, _)| name.to_string())
                        .collect();
                    bail!(
                        "the component exports neither wasi:http/handler@0.3.x nor wasi:http/incoming-handler@0.2.x (it exports: {})",
                        if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") }
                    );
                }
            },
        };
        Ok(Prepared {
            sha256,
            world,
            pre,
            from_cache,
        })
    }

    fn compile_cached(&self, bytes: &[u8], sha256: &str) -> Result<(Component, bool)> {
        let engine_hash = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.engine.precompile_compatibility_hash().hash(&mut h);
            h.finish()
        };
        let path = self
            .cache_dir
            .join(format!("{sha256}-{engine_hash:016x}.cwasm"));
        if path.is_file() {
            // SAFETY: the file was written by `precompile_component` of an engine with the same
            // compatibility hash, into a cache directory owned by this host.
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => {
                    self.metrics.cache_hit();
                    tracing::info!(module = %short(sha256), cache = %path.display(), "loaded compiled module from cache");
                    return Ok((c, true));
                }
                Err(e) => {
                    tracing::warn!(cache = %path.display(), error = %e, "unusable cache entry; recompiling")
                }
            }
        }
        self.metrics.cache_miss();
        let started = Instant::now();
        let compiled = self
            .engine
            .precompile_component(bytes)
            .map_err(anyhow::Error::from)
            .context("compiling the component")?;
        write_atomically(&path, &compiled)
            .with_context(|| format!("writing the compiled-module cache {}", path.display()))?;
        tracing::info!(module = %short(sha256), ms = started.elapsed().as_millis() as u64, "compiled module (cache miss)");
        // SAFETY: `compiled` was just produced by this engine.
        let component = unsafe { Component::deserialize(&self.engine, &compiled) }?;
        Ok((component, false))
    }
}

/// The first 8 hex digits of a sha256: how versions are named.
pub fn short(sha256: &str) -> &str {
    &sha256[..8.min(sha256.len())]
}

/// A component's preamble: `\0asm`, version 0x0d, layer 1. A core module has layer 0.
fn wasmparser_is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[0..4] == b"\0asm" && bytes[6..8] == [1, 0]
}

/// Writes to a unique temporary name, then renames: readers never see a partial file, and two
/// writers of the same entry (two components with the same module) never collide.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "tmp{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// One thread for the whole engine, so timeouts cost no thread or timer per request.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl EpochTicker {
    fn spawn(engine: Engine) -> EpochTicker {
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

/// What a guest is granted and how it is limited; fixed per version.
#[derive(Debug, Clone)]
pub struct InstancePolicy {
    pub files: Vec<FileMount>,
    pub environment: Vec<(String, String)>,
    pub allowed_outbound_hosts: Vec<String>,
    pub memory_limit_bytes: u64,
    pub request_timeout: Duration,
    /// Requests one instance may serve (1 = fresh instance per request).
    pub instance_reuse: u32,
}

/// The data of one store: one instance's WASI state, limits and deadline.
pub struct GuestState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundPolicy,
    limits: StoreLimits,
    deadline: Instant,
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

/// Outgoing HTTP is denied unless the manifest's `allowed_outbound_hosts` names the
/// destination (`scheme://host[:port]`, `*` wildcards for scheme, a leading host label, or port).
#[derive(Clone)]
struct OutboundPolicy {
    allowed: Arc<Vec<String>>,
}

impl OutboundPolicy {
    fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("https");
        let Some(host) = uri.host() else { return false };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "http" { 80 } else { 443 });
        self.allowed
            .iter()
            .any(|pattern| outbound_matches(pattern, scheme, host, port))
    }
}

fn outbound_matches(pattern: &str, scheme: &str, host: &str, port: u16) -> bool {
    let Some((p_scheme, rest)) = pattern.split_once("://") else {
        return false;
    };
    if p_scheme != "*" && p_scheme != scheme {
        return false;
    }
    let (p_host, p_port) = match rest.trim_end_matches('/').rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest.trim_end_matches('/'), None),
    };
    let port_ok = match p_port {
        Some("*") => true,
        Some(p) => p.parse::<u16>() == Ok(port),
        None => port == if p_scheme == "http" { 80 } else { 443 } || p_scheme == "*",
    };
    let host_ok = p_host == "*"
        || p_host.eq_ignore_ascii_case(host)
        || p_host.strip_prefix("*.").is_some_and(|suffix| {
            host.len() > suffix.len() + 1
                && host
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", suffix.to_ascii_lowercase()))
        });
    port_ok && host_ok
}

impl WasiHttpHooks for OutboundPolicy {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        drop(fut);
        if !self.allows(request.uri()) {
            tracing::warn!(uri = %request.uri(), "outbound request denied: not in allowed_outbound_hosts");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// Handles requests for one version of one component.
pub type VersionHandler = ProxyHandler<VersionState>;

pub fn version_handler(
    runtime: &Runtime,
    pre: ProxyPre<GuestState>,
    policy: InstancePolicy,
) -> VersionHandler {
    ProxyHandler::new(VersionState {
        engine: runtime.engine.clone(),
        epoch_deadlines: runtime.epoch_deadlines,
        pre,
        policy,
        metrics: runtime.metrics.clone(),
    })
}

pub struct VersionState {
    engine: Engine,
    epoch_deadlines: bool,
    pre: ProxyPre<GuestState>,
    policy: InstancePolicy,
    metrics: Arc<Metrics>,
}

impl VersionState {
    pub fn request_timeout(&self) -> Duration {
        self.policy.request_timeout
    }

    fn new_store(&self) -> Result<Store<GuestState>> {
        let p = &self.policy;
        let mut wasi = WasiCtxBuilder::new();
        // No stdin, no inherited env, args or network: only what the manifest grants.
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
        let limits = StoreLimitsBuilder::new()
            .memory_size(p.memory_limit_bytes as usize)
            .trap_on_grow_failure(true)
            .build();
        let state = GuestState {
            table: ResourceTable::new(),
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            hooks: OutboundPolicy {
                allowed: Arc::new(p.allowed_outbound_hosts.clone()),
            },
            limits,
            deadline: Instant::now() + p.request_timeout,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // Every tick: past the deadline → trap (504); otherwise yield so a long computation
        // never starves the other requests on this executor thread. The yield goes through
        // `tokio::task::yield_now`, which reschedules the guest only after the worker has polled
        // the I/O driver: a plain `Yield` wakes the task at once, tokio runs it again from its
        // LIFO slot and polls the driver only every 61 scheduler ticks (~0.6 s of 10 ms slices),
        // so new connections on that thread waited for the computation anyway.
        if self.epoch_deadlines {
            store.epoch_deadline_callback(|ctx| {
                if Instant::now() >= ctx.data().deadline {
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
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.metrics.instantiated(started.elapsed().as_secs_f64());
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                request_timeout: self.policy.request_timeout,
                idle_timeout: Duration::from_secs(1),
                sleep: Box::pin(tokio::time::sleep(Duration::from_secs(86400 * 365))),
            },
            state: Worker {
                reuse: self.policy.instance_reuse,
                request_timeout: self.policy.request_timeout,
            },
        })
    }
}

/// When an instance should be dropped: idle too long (reused instances), or a request past its
/// timeout (the second line of defence behind the epoch deadline, for guests blocked in I/O).
pub struct Expiration {
    request_timeout: Duration,
    idle_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let me = self.get_mut();
        let timeout = match status {
            WorkerStatus::Idle => me.idle_timeout,
            WorkerStatus::Requests | WorkerStatus::PostReturn => me.request_timeout,
        };
        let deadline = tokio::time::Instant::from_std(start + timeout);
        if me.sleep.deadline() != deadline {
            me.sleep.as_mut().reset(deadline);
        }
        me.sleep.as_mut().poll(cx)
    }
}

pub struct Worker {
    reuse: u32,
    request_timeout: Duration,
}

/// Requests one reused WASIp3 instance may run at once (as `wasmtime serve`); a fresh instance
/// per request (reuse 1) runs exactly one.
const MAX_CONCURRENT_PER_REUSED_INSTANCE: usize = 16;

impl WorkerState for Worker {
    type StoreData = GuestState;
    type RequestData = ();

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        let max_concurrent = if self.reuse > 1 {
            MAX_CONCURRENT_PER_REUSED_INSTANCE
        } else {
            1
        };
        if total >= self.reuse as usize {
            ShouldAccept::Never
        } else if concurrent >= max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, GuestState>,
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        // The store's CPU deadline follows the newest request; each request's own deadline is
        // the returned future (and, for a busy guest, `Expiration` on the whole instance).
        store.data_mut().deadline = Instant::now() + self.request_timeout;
        Box::pin(tokio::time::sleep(self.request_timeout))
    }

    fn drop(&self, store: Store<GuestState>, result: wasmtime::Result<()>) {
        if let Err(e) = result {
            tracing::debug!(error = %format!("{e:#}"), "instance ended with an error");
        }
        drop(store);
    }
}

/// Why a guest failed to produce a response, for the status code.
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

///
/// `ran_for` is how long the request had been running: an instance killed by the epoch deadline
/// reaches the caller as a bare "worker trapped" error, so a failure at or past the request
/// timeout is the timeout.
pub fn classify(error: &wasmtime::Error, ran_for: Duration, timeout: Duration) -> Failure {
    use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError};
    if error.downcast_ref::<ExpirationError>().is_some() || ran_for + EPOCH_TICK >= timeout {
        return Failure::Timeout;
    }
    if error.downcast_ref::<InstantiationError<()>>().is_some() {
        return Failure::Unavailable;
    }
    for cause in error.chain() {
        if let Some(trap) = cause.downcast_ref::<Trap>() {
            return match trap {
                Trap::Interrupt => Failure::Timeout,
                Trap::AllocationTooLarge => Failure::OutOfMemory,
                _ => Failure::Trap,
            };
        }
    }
    let text = format!("{error:#}");
    if text.contains("forcing trap when growing memory") || text.contains("memory.grow") {
        Failure::OutOfMemory
    } else {
        Failure::Trap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outbound_patterns() {
        let cases = [
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                443,
                true,
            ),
            (
                "https://api.example.com",
                "http",
                "api.example.com",
                80,
                false,
            ),
            (
                "https://api.example.com",
                "https",
                "api.example.com",
                8443,
                false,
            ),
            ("https://*.example.com", "https", "a.example.com", 443, true),
            ("https://*.example.com", "https", "example.com", 443, false),
            ("http://127.0.0.1:8081", "http", "127.0.0.1", 8081, true),
            ("http://127.0.0.1:*", "http", "127.0.0.1", 9, true),
            ("*://*:*", "https", "x.y", 1, true),
            ("api.example.com", "https", "api.example.com", 443, false),
        ];
        for (pattern, scheme, host, port, want) in cases {
            assert_eq!(
                outbound_matches(pattern, scheme, host, port),
                want,
                "{pattern} {scheme}://{host}:{port}"
            );
        }
    }

    #[test]
    fn component_preamble() {
        assert!(wasmparser_is_component(b"\0asm\x0d\0\x01\0"));
        assert!(!wasmparser_is_component(b"\0asm\x01\0\0\0"));
        assert!(!wasmparser_is_component(b"hello world"));
    }
}
