//! oha, the fixed-rate load generator (`-q`): installed from crates.io when missing, run for a
//! number of seconds at a rate, its JSON report read into [`OhaResult`]. Sections 2d (latency
//! at half load) and 7 (model serving) measure p99 with it; wrk's closed loop cannot hold a
//! rate.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// oha's version, installed with `cargo install` when missing.
pub const VERSION: &str = "1.16.0";

/// The numbers of one oha run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OhaResult {
    pub rps: f64,
    pub success_rate: f64,
    /// Responses whose status was not 200.
    pub non_200: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers oha received, whatever their status (0 in results from before it was kept).
    #[serde(default)]
    pub responses: u64,
}

/// oha, installed from crates.io (`cargo install --locked`) when it is not in cargo's bin
/// directory or on PATH.
pub fn ensure() -> Result<PathBuf> {
    let home = PathBuf::from(std::env::var("HOME").context("HOME")?);
    let installed = home.join(".cargo/bin/oha");
    if let Some(p) = [installed.clone()]
        .into_iter()
        .chain(devkit::install::find_tool("oha"))
        .find(|p| devkit::cmd::succeeds(Command::new(p).arg("--version")))
    {
        return Ok(p);
    }
    devkit::cmd::run(Command::new("cargo").args([
        "install",
        "--locked",
        "oha",
        "--version",
        VERSION,
    ]))?;
    Ok(installed)
}

/// oha at `rate` for `seconds`: a POST of `body` (JSON), or a GET without one. Fails unless
/// every request was answered 200 (`what` names the server in the error): a latency of
/// failures measures nothing.
pub fn run(
    what: &str,
    oha: &Path,
    url: &str,
    body: Option<&str>,
    rate: f64,
    conns: u32,
    seconds: u32,
) -> Result<OhaResult> {
    let mut cmd = Command::new(oha);
    cmd.args(["--no-tui", "--output-format", "json", "-z"])
        .arg(format!("{seconds}s"))
        .arg("-q")
        .arg(format!("{rate}"))
        .arg("-c")
        .arg(conns.to_string());
    if let Some(body) = body {
        cmd.args([
            "-m",
            "POST",
            "-H",
            "content-type: application/json",
            "-d",
            body,
        ]);
    }
    let text = devkit::cmd::capture(cmd.arg(url))?;
    let o = parse(&text).with_context(|| format!("parsing oha's output:\n{text}"))?;
    ensure!(
        o.non_200 == 0 && o.success_rate == 1.0,
        "{what} at {rate} req/s: failed requests: {o:?}"
    );
    Ok(o)
}

#[derive(Deserialize)]
struct OhaJson {
    summary: OhaSummary,
    #[serde(rename = "latencyPercentiles")]
    latency_percentiles: OhaPercentiles,
    #[serde(rename = "statusCodeDistribution", default)]
    status_codes: std::collections::BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OhaSummary {
    success_rate: f64,
    requests_per_sec: f64,
}

#[derive(Deserialize)]
struct OhaPercentiles {
    p50: Option<f64>,
    p99: Option<f64>,
}

/// oha's JSON report (seconds) → milliseconds.
pub fn parse(text: &str) -> Result<OhaResult> {
    let j: OhaJson = serde_json::from_str(text)?;
    Ok(OhaResult {
        rps: j.summary.requests_per_sec,
        success_rate: j.summary.success_rate,
        non_200: j
            .status_codes
            .iter()
            .filter(|(code, _)| *code != "200")
            .map(|(_, n)| n)
            .sum(),
        p50_ms: j.latency_percentiles.p50.context("no p50")? * 1e3,
        p99_ms: j.latency_percentiles.p99.context("no p99")? * 1e3,
        responses: j.status_codes.values().sum(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oha_json_is_read_in_milliseconds() {
        let text = r#"{"summary":{"successRate":1.0,"total":5.0,"slowest":0.01,"fastest":0.0001,
            "average":0.0005,"requestsPerSec":1000.5,"totalData":1,"sizePerRequest":1,"sizePerSec":1.0},
            "latencyPercentiles":{"p10":0.0001,"p50":0.0004,"p99":0.0021,"p99.9":0.003},
            "statusCodeDistribution":{"200":4990,"503":10}}"#;
        assert_eq!(
            parse(text).unwrap(),
            OhaResult {
                rps: 1000.5,
                success_rate: 1.0,
                non_200: 10,
                p50_ms: 0.4,
                p99_ms: 2.1,
                responses: 5000,
            }
        );
    }
}
