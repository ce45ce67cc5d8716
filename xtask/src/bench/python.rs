//! Section 6, Python pi: the same Python code (`functions/pi-python`: the Machin algorithm and
//! the contract) as a Spin-SDK component on fnhost, with a fresh instance per request and with
//! `instance_reuse = 128`, against the same code under Flask natively (`flask_app.py`, its
//! threaded server). wrk at `ndigits=10` and `ndigits=1000`; every server's answer checked
//! before and after each run. For fnhost also the mean instantiation time (its metrics
//! histogram over the fresh run) and the host's memory: idle, and at its peak while the fresh
//! run instantiates one component per request.

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
pub const SERVERS: [&str; 3] = ["fnhost fresh", "fnhost reuse128", "Flask (native CPython)"];
pub const DIGITS: [u32; 2] = [10, 1000];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PythonPi {
    pub seconds_per_run: u32,
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
    #[serde(flatten)]
    pub wrk: WrkResult,
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
    let secs = if ctx.quick { 2 } else { 10 };
    let mut runs = Vec::new();
    let measure = |server: &str, addr: &str, runs: &mut Vec<PythonRun>| {
        for ndigits in DIGITS {
            let path = format!("/api/v0/pi?ndigits={ndigits}");
            for &c in &conns {
                let what = format!("{server} ndigits={ndigits}");
                let w = checked_wrk(ctx, &what, addr, &path, c, secs)?;
                runs.push(PythonRun {
                    server: server.to_string(),
                    ndigits,
                    conns: c,
                    wrk: w,
                });
            }
        }
        anyhow::Ok(())
    };

    let cache = ctx.work.join("cache-python");
    let mut servers = Vec::new();
    let (mut instantiation_mean_us, mut instantiations) = (0.0, 0);
    let (mut idle, mut peak) = (0, 0);
    let peak_conns = *conns.last().expect("at least one connection count");
    for (name, reuse) in [("fnhost fresh", 1), ("fnhost reuse128", 128)] {
        let file = format!("python-reuse{reuse}.toml");
        let path = write_manifest(ctx, &file, &manifest(&ctx.root, reuse))?;
        let host = Fnhost::start(ctx, &name.replace(' ', "-"), &path, &cache, &[])?;
        check_route(ctx, &host.addr, "/api/v0/pi?ndigits=10")?;
        if reuse == 1 {
            std::thread::sleep(Duration::from_millis(300));
            idle = host.server.rss_kib()?;
            let before = host.metrics()?;
            let url = format!("http://{}/api/v0/pi?ndigits=10", host.addr);
            let load = wrk::start(&url, peak_conns, secs)?;
            for _ in 0..(secs * 5) {
                std::thread::sleep(Duration::from_millis(200));
                peak = peak.max(host.server.rss_kib()?);
            }
            let w = load.finish()?;
            if !w.clean() {
                bail!("{name}: {} non-2xx during the memory run", w.non2xx);
            }
            let after = host.metrics()?;
            let metric = "fnhost_instantiation_duration_seconds";
            let (s0, c0) = histogram_sum_count(&before, metric, "");
            let (s1, c1) = histogram_sum_count(&after, metric, "");
            if c1 <= c0 {
                bail!("{name}: no instantiations counted in /metrics");
            }
            instantiation_mean_us = (s1 - s0) / (c1 - c0) * 1e6;
            instantiations = (c1 - c0) as u64;
        }
        measure(name, &host.addr, &mut runs)?;
        servers.push((
            name.to_string(),
            fnhost_shown(&format!("target/…/{file}"), ""),
        ));
    }

    // Flask, in its own venv.
    let venv = ctx.root.join("target/venv-flask");
    let python = ensure_venv(&ctx.root.join(FLASK_REQUIREMENTS), &venv)?;
    let [addr] = devkit::net::free_addrs::<1>().map(|a| a.to_string());
    let port = addr
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let mut cmd = Command::new(&python);
    cmd.current_dir(ctx.root.join("functions/pi-python"))
        .args(["flask_app.py", &port]);
    let mut flask = Server::spawn("flask", &mut cmd, &ctx.work.join("flask.log"))?;
    flask.wait_http_ok(&addr, "/api/v0/pi?ndigits=1", Duration::from_secs(60))?;
    measure("Flask (native CPython)", &addr, &mut runs)?;
    drop(flask);
    servers.push((
        "Flask (native CPython)".to_string(),
        "target/venv-flask/bin/python functions/pi-python/flask_app.py $PORT".to_string(),
    ));

    Ok(PythonPi {
        seconds_per_run: secs,
        conns,
        component_bytes: std::fs::metadata(ctx.wasm_dir.join("pi_python.wasm"))?.len(),
        servers,
        runs,
        instantiation_mean_us,
        instantiations,
        fnhost_idle_rss_kib: idle,
        fnhost_peak_rss_kib: peak,
        peak_conns,
    })
}
