//! `cargo xtask fuzz [TARGET] [--seconds N]`: coverage-guided fuzzing of every parser a client
//! or an operator reaches, with cargo-fuzz (libFuzzer) on the nightly toolchain.
//!
//! Targets live in `fuzz/fuzz_targets/`. The same properties run as proptest tests in the
//! normal suite; this is the deeper, longer search.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};

use crate::run as run_cmd;

const TARGETS: &[&str] = &["pi_query", "iris_query", "iris_batch", "manifest"];

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut targets: Vec<&str> = Vec::new();
    let mut seconds = 60u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| anyhow::anyhow!("--seconds needs a number"))?
            }
            t if TARGETS.contains(&t) => targets.push(t),
            other => bail!(
                "unknown fuzz target or option {other:?}; targets: {}",
                TARGETS.join(", ")
            ),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.to_vec();
    }
    let has_cargo_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_cargo_fuzz {
        run_cmd(Command::new("cargo").args(["+nightly", "install", "cargo-fuzz", "--locked"]))?;
    }
    for t in targets {
        let mut cmd = Command::new("cargo");
        cmd.args([
            "+nightly",
            "fuzz",
            "run",
            t,
            "--",
            &format!("-max_total_time={seconds}"),
        ])
        .current_dir(root.join("fuzz"));
        eprintln!("$ (cd fuzz && {})", crate::shown(&cmd));
        let status = cmd.status()?;
        if !status.success() {
            bail!("fuzz target {t} failed (crash artifacts are in fuzz/artifacts/{t}/)");
        }
    }
    Ok(())
}
