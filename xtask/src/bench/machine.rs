//! The machine a run measured on (the report's machine table) and its load around each section.

use std::process::Command;

use anyhow::Result;
use devkit::cmd::capture;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub nproc: String,
    pub mem_total: String,
    pub kernel: String,
    pub rustc: String,
    pub wrk: String,
    /// Python, mpmath and gmpy2 versions and mpmath's backend.
    pub python_mpmath_gmpy2: String,
    /// `wasmtime --version`, or "not used".
    pub wasmtime: String,
}

impl Machine {
    pub fn describe(wasmtime: Option<&std::path::Path>) -> Result<Machine> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        // `wrk --version` prints its version and exits with 1.
        let wrk = Command::new("wrk")
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let line = |cmd: &mut Command| capture(cmd).map(|s| s.trim().to_string());
        Ok(Machine {
            cpu,
            nproc: line(&mut Command::new("nproc"))?,
            mem_total,
            kernel: line(Command::new("uname").arg("-r"))?,
            rustc: line(Command::new("rustc").arg("--version"))?,
            wrk,
            python_mpmath_gmpy2: line(Command::new("python3").args([
                "-c",
                "import sys, mpmath, gmpy2; print(sys.version.split()[0], mpmath.__version__, gmpy2.version(), mpmath.libmp.BACKEND)",
            ]))?,
            wasmtime: match wasmtime {
                Some(w) => line(Command::new(w).arg("--version"))?,
                None => "not used".into(),
            },
        })
    }
}

/// The date and time now, as the report prints it.
pub fn now_utc() -> Result<String> {
    Ok(
        capture(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M:%S UTC"]))?
            .trim()
            .to_string(),
    )
}

/// The load averages of /proc/loadavg (1, 5, 15 minutes).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
