//! Constant load through the load balancer: wrk with a Lua script that gives every request a
//! user of its own (`x-user: u<run>-<thread>-<n>`, what a sticky canary hashes; `<run>`
//! differs between wrk runs, so runs measuring one canary share are independent samples, not
//! the same users again) and counts the 2xx
//! responses by the version that answered them: its `fnhost-version-label` header (two
//! versions of one module differ only by label and files), else its `fnhost-version`. wrk runs in the background
//! with a long duration and is stopped by PID with SIGINT (wrk then prints its summary), or
//! SIGKILLed when dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use devkit::process::{Server, Signal};

use crate::bench::wrk::{self, WrkResult};

/// wrk's threads and connections: enough to keep three replicas busy on a small machine.
const THREADS: u32 = 2;
const CONNECTIONS: u32 = 8;
/// wrk's own bound; a run is normally stopped long before.
const MAX_SECONDS: u32 = 600;

/// The Lua script: per-thread counts by version, summed in `done` and printed one per line as
/// `fleet-version <label or fnhost-version> <count>`.
const SCRIPT: &str = r#"-- Written by `cargo xtask fleet`.
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  run = args[1] or "0"
  n = 0
  versions = {}
end
function request()
  n = n + 1
  return wrk.format(nil, nil, { ["x-user"] = "u" .. run .. "-" .. id .. "-" .. n })
end
function response(status, headers, body)
  if status >= 200 and status < 300 then
    local v = headers["fnhost-version-label"] or headers["fnhost-version"] or "none"
    versions[v] = (versions[v] or 0) + 1
  end
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for v, c in pairs(t:get("versions")) do
      total[v] = (total[v] or 0) + c
    end
  end
  for v, c in pairs(total) do
    io.write(string.format("fleet-version %s %d\n", v, c))
  end
end
"#;

/// A number of its own for every wrk run of this process (the users' prefix).
fn next_run() -> u64 {
    static RUNS: AtomicU64 = AtomicU64::new(1);
    RUNS.fetch_add(1, Ordering::Relaxed)
}

/// What one load run saw.
#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    /// wrk's summary (`None` for an empty result).
    pub wrk: Option<WrkResult>,
    /// 2xx responses by version label (or `fnhost-version` when unlabelled).
    pub by_version: BTreeMap<String, u64>,
}

impl LoadResult {
    pub fn requests(&self) -> u64 {
        self.wrk.as_ref().map_or(0, |w| w.requests)
    }

    /// Non-2xx/3xx answers plus socket errors, as the client saw them.
    pub fn failed(&self) -> u64 {
        self.wrk.as_ref().map_or(0, |w| w.non2xx + w.socket_errors)
    }

    pub fn p99_ms(&self) -> f64 {
        self.wrk.as_ref().map_or(0.0, |w| w.p99_ms)
    }

    /// 2xx responses answered by the version labelled `label`.
    pub fn answered_by(&self, label: &str) -> u64 {
        self.by_version.get(label).copied().unwrap_or(0)
    }

    pub fn answered(&self) -> u64 {
        self.by_version.values().sum()
    }
}

/// wrk running against one URL.
pub struct Load {
    server: Server,
    log: PathBuf,
}

impl Load {
    /// Starts wrk on `url` (the load balancer's address); the script goes into `dir`.
    pub fn start(dir: &Path, name: &str, url: &str) -> Result<Load> {
        let script = dir.join("count-versions.lua");
        if !script.exists() {
            std::fs::write(&script, SCRIPT)?;
        }
        let log = dir.join(format!("wrk-{name}.log"));
        let mut cmd = Command::new("wrk");
        cmd.arg(format!("-t{THREADS}"))
            .arg(format!("-c{CONNECTIONS}"))
            .arg(format!("-d{MAX_SECONDS}s"))
            .args(["--timeout", "10s", "--latency", "--script"])
            .arg(&script)
            .arg(url)
            .arg("--")
            .arg(next_run().to_string())
            .env_remove("RUST_BACKTRACE");
        let server = Server::spawn(&format!("wrk ({name})"), &mut cmd, &log)?;
        Ok(Load { server, log })
    }

    /// Stops wrk with SIGINT and reads what it printed.
    pub fn finish(mut self) -> Result<LoadResult> {
        self.server
            .check_alive()
            .context("wrk stopped before the scenario ended")?;
        let status = self
            .server
            .stop_with(Signal::INT, Duration::from_secs(15))?;
        let out = self.log.with_extension("out");
        let text =
            std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
        ensure!(status.success(), "wrk exited with {status}: {text}");
        parse(&text).with_context(|| format!("parsing wrk's output:\n{text}"))
    }
}

fn parse(text: &str) -> Result<LoadResult> {
    let mut by_version = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("fleet-version ") {
            let (version, count) = rest.rsplit_once(' ').context("odd fleet-version line")?;
            by_version.insert(version.to_string(), count.trim().parse()?);
        }
    }
    Ok(LoadResult {
        wrk: Some(wrk::parse(text)?),
        by_version,
    })
}

/// Sums of several runs of one scenario.
pub fn combine(runs: &[LoadResult]) -> LoadResult {
    let mut total = LoadResult::default();
    let mut p99: f64 = 0.0;
    let mut wrk_sum = WrkResult {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        requests: 0,
        non2xx: 0,
        socket_errors: 0,
    };
    for r in runs {
        if let Some(w) = &r.wrk {
            wrk_sum.requests += w.requests;
            wrk_sum.non2xx += w.non2xx;
            wrk_sum.socket_errors += w.socket_errors;
            wrk_sum.rps = wrk_sum.rps.max(w.rps);
            wrk_sum.p50_ms = wrk_sum.p50_ms.max(w.p50_ms);
            // The worst run's 99th percentile: an upper bound of the scenario's.
            p99 = p99.max(w.p99_ms);
        }
        for (v, c) in &r.by_version {
            *total.by_version.entry(v.clone()).or_default() += c;
        }
    }
    wrk_sum.p99_ms = p99;
    total.wrk = Some(wrk_sum);
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk_and_the_version_counts() {
        let text = "Running 10m test @ http://127.0.0.1:4000/api/v0/pi?ndigits=50
  2 threads and 8 connections
  Latency Distribution
     50%  410.00us
     75%    1.50ms
     90%    2.00ms
     99%    4.30ms
  25000 requests in 2.00s, 5.00MB read
Requests/sec:  12500.50
Transfer/sec:      2.50MB
fleet-version v1 22000
fleet-version v2 3000
";
        let r = parse(text).unwrap();
        assert_eq!(r.requests(), 25000);
        assert_eq!(r.failed(), 0);
        assert_eq!(r.answered_by("v2"), 3000);
        assert_eq!(r.answered(), 25000);
    }
}
