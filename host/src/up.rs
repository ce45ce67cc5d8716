//! `fnhost up`: options → execute → serve, as wasmtime's `serve` reads.
//!
//! [`UpOptions`] is the command line. [`run`] builds the async runtime and calls
//! [`UpOptions::execute`], which reads the manifest, builds the runtime, loads every component
//! and binds the listeners; [`Host::serve`] then serves until a signal and drains. Start-up
//! fails (non-zero exit, message naming file, key and problem) for a manifest error or a local
//! module that does not load. A module that must be downloaded or pulled from a registry and
//! cannot be yet leaves its component not ready (`/readyz` 503) and is retried in the background.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::admin::{self, Admin, AdminRoots};
use crate::deployments::Deployments;
use crate::engine::{EngineSettings, Profile, Runtime};
use crate::http::{self, Public};
use crate::logging::{self, LogFormat};
use crate::manifest;
use crate::metrics::Metrics;
use crate::sources::Sources;
use crate::spec::{App, ComponentSpec};
use crate::watch;

#[derive(Args, Debug)]
pub struct UpOptions {
    /// The Spin manifest to serve.
    #[arg(long, default_value = "spin.toml")]
    manifest: PathBuf,
    /// Public listener (routes and health endpoints).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Admin listener (status, live updates, /metrics); bearer token required.
    #[arg(long, default_value = "127.0.0.1:3001")]
    admin_listen: SocketAddr,
    /// Optional listener that serves only /metrics, without a token (for a Prometheus scraper).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Compiled-module and download cache.
    #[arg(long, env = "FNHOST_CACHE_DIR", default_value = ".fnhost/cache")]
    cache_dir: PathBuf,
    /// Where the generated admin token (when FNHOST_ADMIN_TOKEN is not set) and the key-value
    /// database are written.
    #[arg(long, env = "FNHOST_STATE_DIR", default_value = ".fnhost")]
    state_dir: PathBuf,
    /// Admin bearer token; generated and written to STATE_DIR/admin-token when absent.
    #[arg(
        long = "admin-token",
        env = "FNHOST_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
    /// Key that signs compiled-module cache entries (replicas sharing --cache-dir share it);
    /// default: a private file STATE_DIR/cache-key.
    #[arg(long = "cache-key", env = "FNHOST_CACHE_KEY", hide_env_values = true)]
    cache_key: Option<String>,
    /// Directories whose files the admin API may load (`path=`) or grant (`mount=`); repeat
    /// for several (default: the manifest's directory).
    #[arg(long = "admin-root")]
    admin_roots: Vec<PathBuf>,
    /// PEM certificate chain for the admin listener (TLS); with --admin-tls-key.
    #[arg(long, requires = "admin_tls_key")]
    admin_tls_cert: Option<PathBuf>,
    /// PEM private key for the admin listener (TLS); with --admin-tls-cert.
    #[arg(long, requires = "admin_tls_cert")]
    admin_tls_key: Option<PathBuf>,
    /// Serve the admin API in plain HTTP on a non-loopback address (the token and uploads then
    /// cross the network unencrypted). Without it, a non-loopback --admin-listen needs TLS.
    #[arg(long)]
    admin_plain_http: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Do not watch the manifest and module files for changes.
    #[arg(long)]
    no_watch: bool,
    /// Allocate instances with mmap per instance instead of the pooling allocator.
    #[arg(long)]
    no_pooling: bool,
    /// Turn off epoch interruption: no CPU-time request timeouts (guests blocked in I/O still
    /// time out). Only for measuring what the timeouts cost; never in production.
    #[arg(long)]
    no_cpu_timeouts: bool,
    /// Tell a profiler the names of the guests' compiled functions: `perfmap` writes
    /// /tmp/perf-PID.map, which `perf report` reads (as `wasmtime --profile perfmap`). The map
    /// grows with every module loaded; for profiling sessions, not for a long-running server.
    #[arg(long, value_enum)]
    profile: Option<Profile>,
    /// Threads serving public requests, each with its own instances (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
}

pub fn run(opts: UpOptions) -> Result<()> {
    logging::init(opts.log_format);
    // Start-up, the admin API, watching and signals run here; public requests are served on
    // their own threads (`http::lanes`), started by `Host::serve`.
    let served = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let host = opts.execute().await?;
            host.serve().await
        });
    logging::flush();
    served
}

/// A host ready to serve: components loaded, listeners bound.
pub struct Host {
    app: App,
    deployments: Arc<Deployments>,
    metrics: Arc<Metrics>,
    token: String,
    admin_roots: AdminRoots,
    public: TcpListener,
    admin: TcpListener,
    admin_tls: Option<tokio_rustls::TlsAcceptor>,
    metrics_only: Option<TcpListener>,
    watch: bool,
    serving_lanes: usize,
}

impl UpOptions {
    /// Everything before serving: manifest, runtime, components, listeners.
    pub async fn execute(self) -> Result<Host> {
        let admin_tls = self.admin_tls()?;
        let loaded = manifest::load(&self.manifest)?;
        for w in &loaded.warnings {
            tracing::warn!("{w}");
        }
        let app = loaded.app;
        let metrics = Arc::new(Metrics::new());
        let runtime = Arc::new(Runtime::new(&self.engine_settings(&app)?, metrics.clone())?);
        let deployments = Arc::new(Deployments::new(
            &app.components,
            runtime,
            Sources::new(&self.cache_dir, app.limits.max_module_bytes)?,
            metrics.clone(),
        ));
        load_components(&app, &deployments).await?;
        let admin_roots = match self.admin_roots.is_empty() {
            true => vec![app
                .manifest_path
                .parent()
                .unwrap_or(Path::new("/"))
                .to_path_buf()],
            false => self.admin_roots.clone(),
        };
        let (token, origin) =
            admin::token::admin_token(self.admin_token.as_deref(), &self.state_dir)?;
        match origin {
            admin::token::Origin::Given => {}
            admin::token::Origin::File => {
                println!(
                    "admin token: {}",
                    self.state_dir.join("admin-token").display()
                )
            }
            admin::token::Origin::NewFile => println!(
                "admin token (new): {}",
                self.state_dir.join("admin-token").display()
            ),
        }
        Ok(Host {
            token,
            admin_roots: AdminRoots::new(&admin_roots)?,
            admin_tls,
            public: bind(self.listen, "listening on").await?,
            admin: bind(self.admin_listen, "admin listener on").await?,
            metrics_only: match self.metrics_listen {
                Some(a) => Some(bind(a, "metrics listener on").await?),
                None => None,
            },
            watch: !self.no_watch,
            serving_lanes: self.serving_lanes(&app),
            app,
            deployments,
            metrics,
        })
    }

    /// TLS for the admin listener, and the rule that keeps it: off the loopback interface the
    /// admin API needs TLS, or the explicit `--admin-plain-http`.
    fn admin_tls(&self) -> Result<Option<tokio_rustls::TlsAcceptor>> {
        let tls = match (&self.admin_tls_cert, &self.admin_tls_key) {
            (Some(cert), Some(key)) => Some(admin::tls::acceptor(cert, key)?),
            _ => None,
        };
        if tls.is_none() && !self.admin_listen.ip().is_loopback() {
            if !self.admin_plain_http {
                bail!(
                    "--admin-listen {} is not a loopback address: the admin API carries the admin token and module uploads, so give it TLS (--admin-tls-cert and --admin-tls-key) or accept plain HTTP explicitly with --admin-plain-http",
                    self.admin_listen
                );
            }
            tracing::warn!(admin_listen = %self.admin_listen, "the admin API is served in plain HTTP off the loopback interface (--admin-plain-http): the token and uploads cross the network unencrypted");
        }
        Ok(tls)
    }

    /// One per core (or `--threads`), and no more than execution slots: every lane has its
    /// own share of them (`http::admission`).
    fn serving_lanes(&self, app: &App) -> usize {
        let wanted = match self.threads {
            Some(n) => n.into(),
            None => std::thread::available_parallelism().map_or(1, |n| n.get()),
        };
        wanted.min(app.limits.max_concurrent_requests)
    }

    fn engine_settings(&self, app: &App) -> Result<EngineSettings> {
        Ok(EngineSettings {
            serving_lanes: self.serving_lanes(app),
            pooling: !self.no_pooling,
            epoch_deadlines: !self.no_cpu_timeouts,
            profile: self.profile,
            // The pooling allocator's slots must fit the largest memory any component may have.
            max_memory_bytes: app
                .components
                .values()
                .map(|c| c.limits.memory_limit_bytes)
                .chain([app.limits.memory_limit_bytes])
                .max()
                .unwrap_or(app.limits.memory_limit_bytes),
            cache_dir: self.cache_dir.join("compiled"),
            state_dir: self.state_dir.clone(),
            cache_key: self.cache_key()?,
        })
    }

    /// The compiled cache's signing key: `FNHOST_CACHE_KEY` (replicas sharing a cache volume
    /// share it), else a private file in the state directory.
    fn cache_key(&self) -> Result<[u8; 32]> {
        use sha2::Digest;
        let secret = match &self.cache_key {
            Some(k) if k.len() >= 16 => k.clone(),
            Some(_) => bail!("FNHOST_CACHE_KEY must be at least 16 characters"),
            None => {
                crate::fsutil::private_file(
                    &self.state_dir.join("cache-key"),
                    "compiled-cache key",
                    || hex::encode(rand::random::<[u8; 32]>()),
                )?
                .0
            }
        };
        Ok(sha2::Sha256::digest(secret.as_bytes()).into())
    }
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what} {addr}"))
}

/// Loads every component's current version in parallel (compiling uses all cores anyway), then
/// its manifest candidate. A local module that fails stops start-up; a download that fails
/// leaves the component not ready and is retried in the background.
async fn load_components(app: &App, deployments: &Arc<Deployments>) -> Result<()> {
    let mut loads = tokio::task::JoinSet::new();
    for spec in app.components.values() {
        let (d, spec) = (deployments.clone(), spec.clone());
        loads.spawn(async move {
            let result = d.load_initial(spec.id.as_str(), spec.version.clone()).await;
            (spec, result)
        });
    }
    let file = app.manifest_path.display();
    while let Some(joined) = loads.join_next().await {
        let (spec, result) = joined?;
        let id = &spec.id;
        if spec.pin_key.is_some() {
            deployments
                .set_pin_key(id.as_str(), spec.pin_key.clone())
                .await?;
        }
        match result {
            Ok(()) => load_candidate(deployments, &spec)
                .await
                .with_context(|| format!("{file}: component.{id}.tool.fnhost.candidate"))?,
            Err(e) if spec.version.source.is_remote() => {
                tracing::error!(component = %id, error = %e, "component not loaded; not ready, retrying in the background");
                tokio::spawn(retry_load(deployments.clone(), spec));
            }
            Err(e) => bail!("{file}: component.{id}: {e}"),
        }
    }
    Ok(())
}

async fn load_candidate(deployments: &Deployments, spec: &ComponentSpec) -> Result<()> {
    if let Some(c) = &spec.candidate {
        let version = deployments
            .load(spec.id.as_str(), c.version.clone(), None)
            .await?;
        deployments.set_candidate(version, c.policy.clone()).await?;
    }
    Ok(())
}

/// Retries a failed download with a growing pause (5 s, 10 s, … up to a minute) until it loads.
async fn retry_load(deployments: Arc<Deployments>, spec: ComponentSpec) {
    let id = spec.id.as_str();
    for attempt in 1u32.. {
        let pause = Duration::from_secs(5u64.saturating_mul(attempt as u64).min(60));
        tokio::time::sleep(pause).await;
        if deployments.slot(id).is_some_and(|s| s.is_ready()) {
            return;
        }
        match deployments.load_initial(id, spec.version.clone()).await {
            Ok(()) => {
                tracing::info!(component = %id, attempt, "component loaded; ready");
                // What start-up would have done next: the manifest's candidate.
                if let Err(e) = load_candidate(&deployments, &spec).await {
                    tracing::warn!(component = %id, error = %format!("{e:#}"), "the manifest's candidate did not load; serving the current version alone");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(component = %id, attempt, error = %e, "component still not loaded")
            }
        }
    }
}

impl Host {
    /// Serves the public, admin (and metrics) listeners until SIGTERM or Ctrl-C, then stops
    /// accepting and lets requests in flight finish.
    pub async fn serve(self) -> Result<()> {
        let public_addr = self.public.local_addr()?;
        let admin_addr = self.admin.local_addr()?;
        for (route, component) in self.app.router.routes() {
            println!("GET http://{public_addr}{route} → component {component}");
        }
        println!("admin API on http://{admin_addr} (bearer token required)");
        // Before the first request is accepted: a SIGTERM that comes any time after that must
        // drain, not kill (on a busy machine this task can lag behind the accept loops).
        let shutdown = ShutdownSignals::install()?;
        tracing::info!(%public_addr, %admin_addr, app = %self.app.name, "serving");

        if self.watch {
            watch::spawn(
                self.app.manifest_path.clone(),
                &self.app,
                self.deployments.clone(),
            )?;
        }
        let limits = self.app.limits.clone();
        let public = Arc::new(Public::new(
            self.app.router.clone(),
            self.deployments.clone(),
            limits.clone(),
            self.metrics.clone(),
            self.serving_lanes,
        ));
        let admin = Arc::new(Admin::new(
            self.deployments.clone(),
            self.metrics.clone(),
            &self.token,
            self.admin_roots,
        ));

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let drain = limits.request_timeout + Duration::from_secs(5);
        let lanes = http::lanes::spawn(
            self.public,
            self.serving_lanes,
            &limits,
            move |req, conn| http::handle(public.clone(), req, conn.response_deadline.clone()),
            &stop_rx,
            drain,
        )?;
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let joined = tokio::task::spawn_blocking(move || {
                for lane in lanes {
                    if lane.join().is_err() {
                        tracing::error!("a serving thread panicked");
                    }
                }
            });
            let _ = joined.await;
        });
        tasks.spawn(http::serve(
            self.admin,
            self.admin_tls,
            limits.clone(),
            Arc::new(Semaphore::new(limits.max_connections)),
            None,
            move |req, _| admin::handle(admin.clone(), req),
            stop_rx.clone(),
            drain,
        ));
        if let Some(l) = self.metrics_only {
            let metrics = self.metrics.clone();
            tasks.spawn(http::serve(
                l,
                None,
                limits.clone(),
                Arc::new(Semaphore::new(limits.max_connections)),
                None,
                move |req, _| {
                    let resp = admin::metrics_listener_response(&metrics, req.uri().path());
                    async move { resp }
                },
                stop_rx.clone(),
                drain,
            ));
        }

        shutdown.recv().await;
        tracing::info!("shutting down: no new connections; finishing requests in flight");
        let _ = stop_tx.send(true);
        while tasks.join_next().await.is_some() {}
        tracing::info!("stopped");
        Ok(())
    }
}

/// SIGTERM and SIGINT, handled from the moment they are installed.
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn install() -> Result<ShutdownSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    async fn recv(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }
}
