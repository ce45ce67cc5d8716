//! Section 6, Python pi: the same Python code (`functions/pi-python`: the Machin algorithm and
//! the contract) as a Spin-SDK component on fnhost, with a fresh instance per request and with
//! `instance_reuse = 128`, against the same code under Flask natively (`flask_app.py`, its
//! threaded server). wrk at `ndigits=10` and `ndigits=1000`; every server's answer checked
//! before and after each run. For fnhost also the mean instantiation time (its metrics
//! histogram over the fresh run) and the host's memory: idle, and at its peak while the fresh
//! run instantiates one component per request.
//!
//! In rounds, as section 2: every server is started anew for each, the order alternates, and a
//! cell is the median round. Run once each, one after another, the fresh host's ratio to Flask
//! moved from 0.86× to 1.44× between two runs ten minutes apart (bench/analysis.md).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Result};
use devkit::process::Server;
use devkit::python::ensure_venv;
use serde::{Deserialize, Serialize};

use super::per_instance::histogram_sum_count;
use super::servers::{check_route, checked_wrk, fnhost_shown, write_manifest, Fnhost};
use super::wrk::{self, WrkResult};
use super::Ctx;

/// The Flask control's pinned requirements, relative to the root.
const FLASK_REQUIREMENTS: &str = "functions/pi-python/bench-requirements.txt";
/// The servers, in the order the table lists them.
pub const SERVERS: [&str; 3] = ["fnhost fresh", "fnhost reuse128", FLASK];
const FLASK: &str = "Flask (native CPython)";
pub const DIGITS: [u32; 2] = [10, 1000];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PythonPi {
    pub seconds_per_run: u32,
    /// Rounds: every server started anew and measured once per cell in each (1 before
    /// 2026-12-03, when each server was measured once).
    #[serde(default = "one")]
    pub rounds: usize,
    pub conns: Vec<u32>,
    pub component_bytes: u64,
    pub servers: Vec<(String, String)>,
    pub runs: Vec<PythonRun>,
    /// Mean instantiation of the 25 MB component, µs, and how many were counted.
    pub instantiation_mean_us: f64,
    pub instantiations: u64,
    pub fnhost_idle_rss_kib: u64,
    pub fnhost_peak_rss_kib: u64,
    /// Requests in flight at once while the peak was sampled (wrk connections).
    pub peak_conns: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PythonRun {
    pub server: String,
    pub ndigits: u32,
    pub conns: u32,
    /// req/s of every round, in order (empty in results from before rounds).
    #[serde(default)]
    pub rounds_req_per_s: Vec<f64>,
    /// The round with the median req/s.
    #[serde(flatten)]
    pub wrk: WrkResult,
}

fn one() -> usize {
    1
}

impl PythonPi {
    pub fn rps(&self, server: &str, ndigits: u32, conns: u32) -> Option<f64> {
        self.runs
            .iter()
            .find(|r| r.server == server && r.ndigits == ndigits && r.conns == conns)
            .map(|r| r.wrk.rps)
    }
}

fn manifest(root: &Path, reuse: u32) -> String {
    let root = root.display();
    format!(
        r#"spin_manifest_version = 2
[application]
name = "bench-python"
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[component.pi]
source = "{root}/target/wasm32-wasip2/release/pi_python.wasm"
[component.pi.tool.fnhost]
instance_reuse = {reuse}
"#
    )
}

pub fn run(ctx: &Ctx) -> Result<PythonPi> {
    let conns: Vec<u32> = if ctx.quick { vec![16] } else { vec![1, 16] };
    let (secs, rounds) = if ctx.quick { (2, 1) } else { (6, 3) };
    let cache = ctx.work.join("cache-python");
    let peak_conns = *conns.last().expect("at least one connection count");
    let manifests = [("fnhost fresh", 1), ("fnhost reuse128", 128)]
        .into_iter()
        .map(|(name, reuse)| {
            let file = format!("python-reuse{reuse}.toml");
            let path = write_manifest(ctx, &file, &manifest(&ctx.root, reuse))?;
            anyhow::Ok((name, file, path))
        })
        .collect::<Result<Vec<_>>>()?;
    // Flask, in its own venv.
    let venv = ctx.root.join("target/venv-flask");
    let python = ensure_venv(&ctx.root.join(FLASK_REQUIREMENTS), &venv)?;

    // Compile the component once, untimed, so that every host below loads it from the cache as
    // a deployed replica does: a host that has just compiled it keeps the compiler's memory
    // (the idle RSS read 560 MiB after compiling, 151 MiB after loading from the cache).
    drop(Fnhost::start(
        ctx,
        "fnhost-compile",
        &manifests[0].2,
        &cache,
        &[],
    )?);

    let mut memory = None;
    let mut measured: Vec<(String, u32, u32, Vec<WrkResult>)> = Vec::new();
    for round in 0..rounds {
        let mut hosts = Vec::new();
        for (name, _, path) in &manifests {
            let host = Fnhost::start(ctx, &name.replace(' ', "-"), path, &cache, &[])?;
            check_route(ctx, &host.addr, "/api/v0/pi?ndigits=10")?;
            hosts.push((*name, host));
        }
        let [flask_addr] = devkit::net::free_addrs::<1>().map(|a| a.to_string());
        let port = flask_addr
            .rsplit_once(':')
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        let mut cmd = Command::new(&python);
        cmd.current_dir(ctx.root.join("functions/pi-python"))
            .args(["flask_app.py", &port]);
        let mut flask = Server::spawn("flask", &mut cmd, &ctx.work.join("flask.log"))?;
        flask.wait_http_ok(&flask_addr, "/api/v0/pi?ndigits=1", Duration::from_secs(60))?;

        if round == 0 {
            memory = Some(fresh_memory(&hosts[0].1, peak_conns, secs)?);
        }
        let mut running: Vec<(&str, &str)> = hosts
            .iter()
            .map(|(name, host)| (*name, host.addr.as_str()))
            .collect();
        running.push((FLASK, &flask_addr));
        if round % 2 == 1 {
            running.reverse();
        }
        for &(server, addr) in &running {
            for ndigits in DIGITS {
                let path = format!("/api/v0/pi?ndigits={ndigits}");
                for &c in &conns {
                    let what = format!("{server} ndigits={ndigits}");
                    let w = checked_wrk(ctx, &what, addr, &path, c, secs)?;
                    match measured
                        .iter_mut()
                        .find(|(s, n, k, _)| s == server && *n == ndigits && *k == c)
                    {
                        Some((_, _, _, runs)) => runs.push(w),
                        None => measured.push((server.to_string(), ndigits, c, vec![w])),
                    }
                }
            }
        }
        // Dropping the servers stops them (by PID) before the next round starts its own.
        drop(flask);
        drop(hosts);
    }
    let runs = measured
        .into_iter()
        .map(|(server, ndigits, conns, runs)| {
            let (rounds_req_per_s, wrk) = wrk::median_round(runs);
            PythonRun {
                server,
                ndigits,
                conns,
                rounds_req_per_s,
                wrk,
            }
        })
        .collect();
    let mut servers: Vec<(String, String)> = manifests
        .iter()
        .map(|(name, file, _)| {
            (
                name.to_string(),
                fnhost_shown(&format!("target/…/{file}"), ""),
            )
        })
        .collect();
    servers.push((
        FLASK.to_string(),
        "target/venv-flask/bin/python functions/pi-python/flask_app.py $PORT".to_string(),
    ));
    let memory = memory.expect("round 0 measures the fresh host's memory");

    Ok(PythonPi {
        seconds_per_run: secs,
        rounds,
        conns,
        component_bytes: std::fs::metadata(ctx.wasm_dir.join("pi_python.wasm"))?.len(),
        servers,
        runs,
        instantiation_mean_us: memory.instantiation_mean_us,
        instantiations: memory.instantiations,
        fnhost_idle_rss_kib: memory.idle_rss_kib,
        fnhost_peak_rss_kib: memory.peak_rss_kib,
        peak_conns,
    })
}

/// What the fresh host's memory run measured.
struct FreshMemory {
    instantiation_mean_us: f64,
    instantiations: u64,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
}

/// The fresh host's RSS idle and at its peak under `conns` connections, and its mean
/// instantiation time over that run (its metrics histogram).
fn fresh_memory(host: &Fnhost, conns: u32, secs: u32) -> Result<FreshMemory> {
    std::thread::sleep(Duration::from_millis(300));
    let idle_rss_kib = host.server.rss_kib()?;
    let admin_metrics = || host.metrics();
    let before = admin_metrics()?;
    let url = format!("http://{}/api/v0/pi?ndigits=10", host.addr);
    let load = wrk::start(&url, conns, secs)?;
    let mut peak_rss_kib = 0;
    for _ in 0..(secs * 5) {
        std::thread::sleep(Duration::from_millis(200));
        peak_rss_kib = peak_rss_kib.max(host.server.rss_kib()?);
    }
    let w = load.finish()?;
    if !w.clean() {
        bail!("fnhost fresh: {} non-2xx during the memory run", w.non2xx);
    }
    let after = admin_metrics()?;
    let metric = "fnhost_instantiation_duration_seconds";
    let (s0, c0) = histogram_sum_count(&before, metric, "");
    let (s1, c1) = histogram_sum_count(&after, metric, "");
    if c1 <= c0 {
        bail!("fnhost fresh: no instantiations counted in /metrics");
    }
    Ok(FreshMemory {
        instantiation_mean_us: (s1 - s0) / (c1 - c0) * 1e6,
        instantiations: (c1 - c0) as u64,
        idle_rss_kib,
        peak_rss_kib,
    })
}
