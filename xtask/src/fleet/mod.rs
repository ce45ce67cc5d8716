//! `cargo xtask fleet [--quick]`: three replicas of the real fnhost image behind a real load
//! balancer, rolled out under constant load, the way a Kubernetes Deployment would run them,
//! on this one machine.
//!
//! The rig: a private `dockerd` with the `fnhost:dev` image ([`crate::docker`]); Distribution
//! (Debian's `docker-registry`) on loopback with its own storage, holding pi v1 and v2, iris
//! and the test-faults component, pushed with `fnhost push`; three containers, each
//! `--network host` with its public and admin listeners on 127.0.0.1 ports of their own, all
//! mounting one host directory at `/app` as the "ConfigMap" (`..data` → a timestamped
//! directory, `spin.toml` → `..data/spin.toml`, updated by writing a new timestamped
//! directory and renaming a new `..data_tmp` symlink over `..data`, as the kubelet's
//! AtomicWriter does); HAProxy in front ([`haproxy`]: health checks on `/readyz`, retries of
//! idempotent requests on another replica); wrk through HAProxy during every scenario
//! ([`load`]).
//!
//! The six scenarios ([`scenarios`]) each print one line
//! `scenario NAME: requests=N failed=F p99=… canary_share=S (set W) converged_in=…s`, where
//! `failed` counts what the clients saw (wrk's non-2xx and socket errors; HAProxy's own
//! frontend counters must agree), and fail unless: no request failed; a canary's share is
//! within ±2 points of its weight over at least 10,000 requests; and after convergence every
//! replica's `GET /v1/status` reports the same versions, the desired ones. `converged_in` is
//! the time from the ConfigMap write until every replica reports the new state.
//!
//! `--quick` (in `cargo xtask test`) holds each state for seconds; the full run (a section of
//! `cargo xtask bench`) for longer, with more requests per canary measurement. Every process
//! started here is stopped by PID or container name when its guard drops, also on failure;
//! every wait is bounded.

mod haproxy;
mod load;
pub mod manifest;
mod scenarios;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use devkit::cmd::run as run_command;
use devkit::http::Client;
use devkit::registry::Registry;
use serde::{Deserialize, Serialize};

use crate::docker::{Container, Dockerd, FnhostRun};
use crate::image::kubelet_write;
use crate::workspace::{build, target_dir, wasm_dir};
use haproxy::{Haproxy, Stats};
use load::{Load, LoadResult};
use manifest::{Component, Desired, Status, IRIS_V1, PI_V1};

/// Replicas behind the load balancer.
const REPLICAS: usize = 3;
/// How long a replica may take to load the fleet's manifest (registry pulls, compilation).
const READY_TIMEOUT: Duration = Duration::from_secs(180);
/// How long every replica may take to apply a ConfigMap update.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the scenarios hold each state and how much they measure.
#[derive(Clone, Copy, Debug)]
struct Timing {
    /// Load after a scenario's last convergence.
    hold: Duration,
    /// 2xx responses each canary share is measured over (at least).
    share_requests: u64,
    /// One wrk run of a canary measurement (repeated until `share_requests`).
    share_slice: Duration,
    /// How long the registry stays down in the registry scenario.
    outage: Duration,
}

impl Timing {
    fn new(quick: bool) -> Timing {
        if quick {
            Timing {
                hold: Duration::from_secs(2),
                share_requests: 10_000,
                share_slice: Duration::from_secs(4),
                outage: Duration::from_secs(3),
            }
        } else {
            Timing {
                hold: Duration::from_secs(20),
                share_requests: 100_000,
                share_slice: Duration::from_secs(20),
                outage: Duration::from_secs(30),
            }
        }
    }
}

/// One scenario's outcome: what its line prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    pub name: String,
    pub requests: u64,
    /// Client-side failures: wrk's non-2xx answers and socket errors.
    pub failed: u64,
    /// The worst 99th percentile latency of the scenario's wrk runs.
    pub p99_ms: f64,
    /// Measured canary share and set weight, in percent, per canary step.
    pub canary: Vec<(f64, f64)>,
    /// Seconds from each ConfigMap write to every replica reporting the new state.
    pub converged_in_s: Vec<f64>,
    /// Failed connections, broken responses and 5xx at the replicas (HAProxy's server counters).
    pub replica_failures: u64,
    /// Retries and redispatches HAProxy made.
    pub retries: u64,
    /// Failures HAProxy's frontend answered to clients.
    pub lb_client_failures: u64,
}

impl fmt::Display for ScenarioResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |v: Vec<String>| v.join(",");
        let share = if self.canary.is_empty() {
            "-".to_string()
        } else {
            format!(
                "{} (set {})",
                join(
                    self.canary
                        .iter()
                        .map(|(s, _)| format!("{s:.1}%"))
                        .collect()
                ),
                join(self.canary.iter().map(|(_, w)| format!("{w}%")).collect())
            )
        };
        write!(
            f,
            "scenario {}: requests={} failed={} p99={:.1}ms canary_share={share} converged_in={}s replica_failures={} retried={}",
            self.name,
            self.requests,
            self.failed,
            self.p99_ms,
            join(self.converged_in_s.iter().map(|s| format!("{s:.2}")).collect()),
            self.replica_failures,
            self.retries,
        )
    }
}

/// A whole run: the scenarios and the rig's own timings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FleetReport {
    pub quick: bool,
    /// `fnhost push` of each module: (module, bytes, milliseconds).
    pub pushes: Vec<(String, u64, f64)>,
    /// `fnhost pull` of pi v2 from the loopback registry, milliseconds.
    pub pull_ms: f64,
    /// Container start → every replica ready (three registry pulls and compilations each).
    pub replicas_ready_s: f64,
    pub scenarios: Vec<ScenarioResult>,
    pub total_s: f64,
}

/// `cargo xtask fleet`: builds what it needs, starts its own daemon, runs, stops everything.
pub fn run(root: &Path, quick: bool) -> Result<FleetReport> {
    build(true)?;
    let scratch = devkit::TempDir::new("fleet-docker");
    let daemon = Dockerd::with_image(root, scratch.path())?;
    let result = run_in(root, &daemon, quick);
    if result.is_err() {
        println!("fleet: dockerd log: {}", daemon.log_path().display());
        scratch.keep();
    }
    let stopped = daemon.stop();
    let report = result?;
    stopped?;
    Ok(report)
}

/// The rig and the six scenarios in `daemon`, which already has the image.
pub fn run_in(root: &Path, daemon: &Dockerd, quick: bool) -> Result<FleetReport> {
    let started = Instant::now();
    let scratch = devkit::TempDir::new("fleet");
    println!("fleet: working directory {}", scratch.path().display());
    let outcome =
        Rig::start(root, daemon, scratch.path(), Timing::new(quick)).and_then(|mut rig| {
            let scenarios = scenarios::run_all(&mut rig);
            if scenarios.is_err() {
                rig.print_replica_logs();
            }
            Ok(FleetReport {
                quick,
                pushes: rig.pushes.clone(),
                pull_ms: rig.pull_ms,
                replicas_ready_s: rig.ready_in.as_secs_f64(),
                scenarios: scenarios?,
                total_s: started.elapsed().as_secs_f64(),
            })
        });
    if outcome.is_err() {
        println!("fleet: FAILED; logs kept in {}", scratch.path().display());
        scratch.keep();
    } else {
        println!(
            "fleet: all six scenarios passed in {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
    outcome
}

/// One fnhost container and its two loopback ports.
struct Replica {
    container: Container,
    port: u16,
    admin_port: u16,
}

/// Everything the scenarios act on. Field order is drop order: the load balancer, then the
/// replicas, then the registry.
struct Rig {
    haproxy: Haproxy,
    replicas: Vec<Replica>,
    registry: Registry,
    /// The ConfigMap directory every replica mounts at /app.
    app: PathBuf,
    /// Where logs, scripts and wrk's output go.
    dir: PathBuf,
    generation: u32,
    desired: Desired,
    models: Vec<(&'static str, Vec<u8>)>,
    admin: Client,
    token: String,
    timing: Timing,
    pushes: Vec<(String, u64, f64)>,
    pull_ms: f64,
    ready_in: Duration,
}

/// The modules pushed to the registry: (file in the wasm directory, `fnhost/<repo>:<tag>`).
const MODULES: &[(&str, &str)] = &[
    ("pi_picrunch.wasm", "pi:1.0.0"),
    ("pi_chudnovsky.wasm", "pi:2.0.0"),
    ("iris.wasm", "iris:1.0.0"),
    ("test_faults.wasm", "faults:1.0.0"),
];

impl Rig {
    fn start(root: &Path, daemon: &Dockerd, dir: &Path, timing: Timing) -> Result<Rig> {
        devkit::install::ensure_tool("wrk", &["wrk"])?;
        let fnhost = target_dir().join("release/fnhost");
        ensure!(
            fnhost.is_file(),
            "{} is missing: cargo xtask build",
            fnhost.display()
        );
        let mut models = Vec::new();
        for (rel, src) in [
            ("models/iris/v1/model.json", "models/iris/v1/model.json"),
            ("models/iris/v2/model.json", "models/iris/v2/model.json"),
        ] {
            let path = root.join(src);
            models.push((
                rel,
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?,
            ));
        }

        // The registry, with every module pushed (and one pulled back, timed).
        let registry = Registry::start(&dir.join("registry"), "")?;
        let docker_config = dir.join("docker-config");
        std::fs::create_dir_all(&docker_config)?;
        let fnhost_cmd = || {
            let mut c = Command::new(&fnhost);
            c.env("DOCKER_CONFIG", &docker_config)
                .env_remove("FNHOST_REGISTRY_USERNAME")
                .env_remove("FNHOST_REGISTRY_PASSWORD")
                .env_remove("RUST_BACKTRACE");
            c
        };
        let mut pushes = Vec::new();
        for (file, reference) in MODULES {
            let path = wasm_dir().join(file);
            ensure!(
                path.is_file(),
                "{} is missing: cargo xtask build",
                path.display()
            );
            let t = Instant::now();
            run_command(
                fnhost_cmd()
                    .arg("push")
                    .arg(&path)
                    .arg(format!("{}/fnhost/{reference}", registry.host())),
            )?;
            pushes.push((
                reference.to_string(),
                std::fs::metadata(&path)?.len(),
                t.elapsed().as_secs_f64() * 1000.0,
            ));
        }
        let t = Instant::now();
        run_command(
            fnhost_cmd()
                .arg("pull")
                .arg(format!("oci://{}/fnhost/pi:2.0.0", registry.host()))
                .arg("-o")
                .arg(dir.join("pulled-pi.wasm")),
        )?;
        let pull_ms = t.elapsed().as_secs_f64() * 1000.0;

        // The ConfigMap.
        let app = dir.join("app");
        std::fs::create_dir_all(&app)?;
        crate::image::make_world_readable(&app)?;
        let desired = Desired {
            pi: Component::only(PI_V1),
            iris: Component::only(IRIS_V1),
        };
        kubelet_write(&app, 1, &desired.render(&registry.host()), &models)?;

        // The replicas.
        let token = format!(
            "fleet-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        );
        let ports: [u16; 2 * REPLICAS] = devkit::net::free_ports();
        let mut replicas = Vec::new();
        let launched = Instant::now();
        for i in 0..REPLICAS {
            let (port, admin_port) = (ports[2 * i], ports[2 * i + 1]);
            let container = daemon.run_fnhost(&FnhostRun {
                name: format!("fnhost-fleet-{}-{}", std::process::id(), i + 1),
                port,
                admin_port,
                mounts: vec![(app.clone(), "/app".into())],
                env: vec![("FNHOST_ADMIN_TOKEN".into(), token.clone())],
            })?;
            replicas.push(Replica {
                container,
                port,
                admin_port,
            });
        }
        let backends: Vec<u16> = replicas.iter().map(|r| r.port).collect();
        let haproxy = Haproxy::start(dir, &backends)?;
        let mut rig = Rig {
            haproxy,
            replicas,
            registry,
            app,
            dir: dir.to_path_buf(),
            generation: 1,
            desired,
            models,
            admin: Client::new(Duration::from_secs(5)),
            token,
            timing,
            pushes,
            pull_ms,
            ready_in: Duration::ZERO,
        };
        rig.ready_in = rig
            .wait_converged(launched, READY_TIMEOUT)
            .context("the replicas did not start")?;
        println!(
            "fleet: {REPLICAS} replicas ready {:.2} s after `docker run` (registry pulls and compilation included)",
            rig.ready_in.as_secs_f64()
        );
        rig.wait_lb_sees(REPLICAS)?;
        Ok(rig)
    }

    /// Writes `desired` into the ConfigMap (kubelet-style); returns when it was written.
    fn apply(&mut self, desired: Desired) -> Result<Instant> {
        self.generation += 1;
        kubelet_write(
            &self.app,
            self.generation,
            &desired.render(&self.registry.host()),
            &self.models,
        )?;
        self.desired = desired;
        Ok(Instant::now())
    }

    /// `GET /v1/status` of replica `i`.
    fn status(&self, i: usize) -> Result<Status> {
        let url = format!("http://127.0.0.1:{}/v1/status", self.replicas[i].admin_port);
        let auth = format!("Bearer {}", self.token);
        let r = self
            .admin
            .request("GET", &url, &[("authorization", &auth)], None)?;
        ensure!(r.status == 200, "{url}: HTTP {}: {}", r.status, r.text());
        serde_json::from_slice(&r.body).with_context(|| format!("{url}: {}", r.text()))
    }

    /// Polls every replica until `done` holds for all of them; the time since `since`.
    fn wait_all(
        &self,
        what: &str,
        since: Instant,
        timeout: Duration,
        done: impl Fn(&Status) -> bool,
    ) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            let statuses: Vec<Result<Status>> =
                (0..self.replicas.len()).map(|i| self.status(i)).collect();
            if statuses.iter().all(|s| s.as_ref().is_ok_and(&done)) {
                return Ok(since.elapsed());
            }
            if Instant::now() > deadline {
                let shown: Vec<String> = statuses
                    .iter()
                    .enumerate()
                    .map(|(i, s)| match s {
                        Ok(s) => format!("replica {}: {:?}", i + 1, s.components),
                        Err(e) => format!("replica {}: {e:#}", i + 1),
                    })
                    .collect();
                bail!(
                    "{what}: not reached within {timeout:?}:\n{}",
                    shown.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every replica reports the desired state, ready and without load errors;
    /// then checks they all report the same versions (names and digests).
    fn wait_converged(&self, since: Instant, timeout: Duration) -> Result<Duration> {
        let expected = self.desired.expected();
        let took = self.wait_all("convergence", since, timeout, |s| {
            s.healthy() && s.observed() == expected
        })?;
        let versions: Vec<Vec<(String, Option<String>)>> = (0..self.replicas.len())
            .map(|i| {
                let s = self.status(i)?;
                Ok(s.components
                    .iter()
                    .map(|c| {
                        (
                            c.current
                                .as_ref()
                                .map(|v| v.version.clone())
                                .unwrap_or_default(),
                            c.candidate.as_ref().map(|v| v.version.version.clone()),
                        )
                    })
                    .collect())
            })
            .collect::<Result<_>>()?;
        ensure!(
            versions.windows(2).all(|w| w[0] == w[1]),
            "replicas converged on different versions: {versions:?}"
        );
        Ok(took)
    }

    /// Waits until HAProxy's health checks see `n` replicas up.
    fn wait_lb_sees(&mut self, n: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = self.haproxy.servers_up()?;
            if up == n {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "haproxy sees {up} replicas up, not {n}, after 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts wrk through the load balancer on `path`.
    fn load(&self, name: &str, path: &str) -> Result<Load> {
        Load::start(&self.dir, name, &self.haproxy.url(path))
    }

    fn stats(&mut self) -> Result<Stats> {
        self.haproxy.stats()
    }

    fn print_replica_logs(&self) {
        for r in &self.replicas {
            println!(
                "fleet: logs of {} (127.0.0.1:{}):",
                r.container.name, r.port
            );
            r.container.print_logs(60);
        }
    }
}

/// Runs `f` with the load running, then stops the load: what it saw, and `f`'s result.
fn under_load<T>(load: Load, f: impl FnOnce() -> Result<T>) -> Result<(LoadResult, T)> {
    let outcome = f();
    let seen = load.finish();
    let value = outcome?;
    Ok((seen?, value))
}
