//! `cargo xtask fuzz [TARGET…] [--seconds N]`: coverage-guided fuzzing of every parser a client
//! or an operator reaches, with cargo-fuzz (libFuzzer) on the nightly toolchain.
//!
//! Targets live in `fuzz/fuzz_targets/`. The same properties run as proptest tests in the
//! normal suite; this is the deeper, longer search.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use devkit::cmd::{run as run_cmd, succeeds};

#[derive(Clone, Copy, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum Target {
    PiQuery,
    IrisQuery,
    IrisBatch,
    Manifest,
}

#[derive(Args)]
pub struct Options {
    /// Targets to run (all when none is named)
    #[arg(value_enum)]
    targets: Vec<Target>,
    /// Time per target
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let targets = if options.targets.is_empty() {
        Target::value_variants().to_vec()
    } else {
        options.targets.clone()
    };
    if !succeeds(Command::new("cargo").args(["+nightly", "fuzz", "--version"])) {
        run_cmd(Command::new("cargo").args(["+nightly", "install", "cargo-fuzz", "--locked"]))?;
    }
    for t in targets {
        let name = t.to_possible_value().expect("no skipped variants");
        let name = name.get_name();
        run_cmd(
            Command::new("cargo")
                .current_dir(root.join("fuzz"))
                .args(["+nightly", "fuzz", "run", name, "--"])
                .arg(format!("-max_total_time={}", options.seconds)),
        )
        .with_context(|| {
            format!("fuzz target {name} failed (crash artifacts are in fuzz/artifacts/{name}/)")
        })?;
    }
    Ok(())
}
