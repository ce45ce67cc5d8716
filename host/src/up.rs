//! `fnhost up`: read the manifest, load every component, open the listeners, serve until a
//! signal, then drain.
//!
//! Start-up fails (non-zero exit, message naming file, key and problem) for a manifest error or
//! a local module that does not load. A module that must be downloaded and cannot be yet leaves
//! its component not ready (`/readyz` 503) and is retried in the background.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use tokio::net::TcpListener;

use crate::admin::{self, Admin};
use crate::deployments::{CanaryPolicy, Deployments, VersionSpec};
use crate::engine::{EngineSettings, Runtime};
use crate::manifest::{self, Source};
use crate::metrics::Metrics;
use crate::router::Router;
use crate::server::{self, Public};
use crate::sources::Sources;
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
    /// Where the generated admin token is written (when FNHOST_ADMIN_TOKEN is not set).
    #[arg(long, env = "FNHOST_STATE_DIR", default_value = ".fnhost")]
    state_dir: PathBuf,
    /// Admin bearer token; generated and written to STATE_DIR/admin-token when absent.
    #[arg(
        long = "admin-token",
        env = "FNHOST_ADMIN_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
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
    /// Worker threads of the async runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub fn run(opts: UpOptions) -> Result<()> {
    init_logging(opts.log_format);
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = opts.threads {
        rt.worker_threads(n);
    }
    rt.build()?.block_on(up(opts))
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FNHOST_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,wasmtime_wasi_http=warn,cranelift=warn,wasmtime=warn",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

async fn up(opts: UpOptions) -> Result<()> {
    let loaded = manifest::load(&opts.manifest)?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let app = loaded.app;
    let settings = app.settings.clone();
    let metrics = Arc::new(Metrics::new());
    let max_memory = app
        .components
        .values()
        .filter_map(|c| c.settings.memory_limit_bytes)
        .chain([settings.memory_limit_bytes])
        .max()
        .unwrap_or(settings.memory_limit_bytes);
    let runtime = Arc::new(Runtime::new(
        &EngineSettings {
            pooling: !opts.no_pooling,
            epoch_deadlines: !opts.no_cpu_timeouts,
            max_memory_bytes: max_memory,
            cache_dir: opts.cache_dir.join("compiled"),
        },
        metrics.clone(),
    )?);
    let sources = Sources::new(&opts.cache_dir)?;
    let deployments = Arc::new(Deployments::new(
        &app.components,
        &settings,
        runtime,
        sources,
        metrics.clone(),
    ));

    // Load every component's current version in parallel (compiling uses all cores anyway).
    let mut loads = tokio::task::JoinSet::new();
    for (id, spec) in &app.components {
        let (d, id, spec) = (deployments.clone(), id.clone(), spec.clone());
        loads.spawn(async move {
            let result = d.load_initial(&id, VersionSpec::current_of(&spec)).await;
            (id, spec, result)
        });
    }
    let mut retry = Vec::new();
    while let Some(joined) = loads.join_next().await {
        let (id, spec, result) = joined?;
        if let Err(e) = result {
            if matches!(spec.source, Source::Url { .. }) {
                tracing::error!(component = %id, error = %format!("{e:#}"), "component not loaded; not ready, retrying in the background");
                retry.push((id, spec));
                continue;
            }
            bail!("{}: component.{id}: {e:#}", app.manifest_path.display());
        }
        if let (Some(c), Some(cspec)) = (&spec.candidate, VersionSpec::candidate_of(&spec)) {
            let version = deployments.load(&id, cspec, None).await.with_context(|| {
                format!(
                    "{}: component.{id}.tool.fnhost.candidate",
                    app.manifest_path.display()
                )
            })?;
            deployments
                .set_candidate(
                    version,
                    CanaryPolicy {
                        weight: c.weight,
                        sticky: c.sticky.clone(),
                        guard: c.guard.clone(),
                    },
                )
                .await?;
        }
    }
    for (id, spec) in retry {
        let d = deployments.clone();
        tokio::spawn(async move {
            for attempt in 1u32.. {
                tokio::time::sleep(Duration::from_secs(
                    5u64.saturating_mul(attempt as u64).min(60),
                ))
                .await;
                if d.slot(&id).is_some_and(|s| s.state().current.is_some()) {
                    return;
                }
                match d.load_initial(&id, VersionSpec::current_of(&spec)).await {
                    Ok(()) => {
                        return tracing::info!(component = %id, attempt, "component loaded; ready")
                    }
                    Err(e) => {
                        tracing::warn!(component = %id, attempt, error = %format!("{e:#}"), "component still not loaded")
                    }
                }
            }
        });
    }

    let token = admin_token(&opts)?;
    let router = Router::new(
        app.routes
            .iter()
            .map(|r| (r.route.clone(), r.component.clone())),
    )
    .map_err(anyhow::Error::msg)?;
    let public = Arc::new(Public::new(
        router,
        deployments.clone(),
        settings.clone(),
        metrics.clone(),
    ));
    let admin = Arc::new(Admin::new(deployments.clone(), metrics.clone(), &token));

    let public_listener = TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("listening on {}", opts.listen))?;
    let admin_listener = TcpListener::bind(opts.admin_listen)
        .await
        .with_context(|| format!("admin listener on {}", opts.admin_listen))?;
    let metrics_listener = match opts.metrics_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("metrics listener on {a}"))?,
        ),
        None => None,
    };
    let public_addr = public_listener.local_addr()?;
    let admin_addr = admin_listener.local_addr()?;
    for r in &app.routes {
        let route = r.route.trim_end_matches("/...");
        let shown = if r.route.ends_with("/...") {
            format!("{route}/...")
        } else {
            route.to_string()
        };
        println!(
            "GET http://{public_addr}{shown} → component {}",
            r.component
        );
    }
    println!("admin API on http://{admin_addr} (bearer token required)");
    tracing::info!(%public_addr, %admin_addr, app = %app.name, "serving");

    if !opts.no_watch {
        watch::spawn(app.manifest_path.clone(), &app, deployments.clone())?;
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let drain = settings.request_timeout + Duration::from_secs(5);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(server::serve(
        public_listener,
        settings.clone(),
        move |req, _| server::handle(public.clone(), req),
        stop_rx.clone(),
        drain,
    ));
    tasks.spawn(server::serve(
        admin_listener,
        settings.clone(),
        move |req, _| admin::handle(admin.clone(), req),
        stop_rx.clone(),
        drain,
    ));
    if let Some(l) = metrics_listener {
        let metrics = metrics.clone();
        tasks.spawn(server::serve(
            l,
            settings.clone(),
            move |_, _| {
                let resp = admin::metrics_response(&metrics);
                async move { resp }
            },
            stop_rx.clone(),
            drain,
        ));
    }

    shutdown_signal().await;
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The admin token: from the environment/flag, or generated once and written (mode 0600).
fn admin_token(opts: &UpOptions) -> Result<String> {
    if let Some(t) = &opts.admin_token {
        if t.trim().len() < 16 {
            bail!("FNHOST_ADMIN_TOKEN must be at least 16 characters");
        }
        return Ok(t.trim().to_string());
    }
    let path = opts.state_dir.join("admin-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if t.trim().len() >= 16 {
            println!("admin token: {}", path.display());
            return Ok(t.trim().to_string());
        }
    }
    let token: String = {
        let bytes: [u8; 32] = rand::random();
        hex::encode(bytes)
    };
    write_private(&path, &token)?;
    println!("admin token (new): {}", path.display());
    Ok(token)
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing the admin token to {}", path.display()))?;
    f.write_all(contents.as_bytes())?;
    Ok(())
}
