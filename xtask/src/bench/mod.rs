//! `cargo xtask bench [--quick] [--section NAME…]`: measures fnhost and writes
//! `bench/results.json` (the typed results of [`results::Results`]) and `BENCHMARKS.md`
//! (rendered from them by [`render`], with the PNG plots under `bench/`).
//!
//! One module per section, each a function returning its typed result:
//!
//! 1. [`pi_compute`]: v1 (picrunch, Machin) and v2 (Chudnovsky) natively in-process
//!    (`native-control --time-pi`), as wasm through fnhost over HTTP, and mpmath+gmpy2
//!    in-process; peak memory at the largest sizes; the original CPython picrunch.
//! 2. [`serving`]: wrk against iris GET and pi `ndigits=100` at 1, 16 and 64 connections:
//!    fnhost (fresh instance per request and `instance_reuse = 128`), `wasmtime serve` (with
//!    `--max-instance-reuse-count 1` and at its default), and `native-control` (the same
//!    pure-Rust cores behind plain hyper).
//!
//!    2b. [`timeout_cost`]: the same manifest served with CPU-time timeouts on and with
//!    `--no-cpu-timeouts`, side by side (req/s and server CPU per request, iris and pi at
//!    100 and 10^4 decimals), and the same comparison for `wasmtime serve -W timeout`.
//!
//!    2c. [`log_cost`]: the same manifest served with its access log and without
//!    (`FNHOST_LOG=warn`), side by side, iris and pi at 100 decimals.
//!    2d. [`latency`]: p50 and p99 at half of fnhost's maximum rate (oha `-q`), beside the
//!    native control at the same rate (the machine's floor).
//! 3. [`startup`]: process start → first 200, with a cold and a warm compiled-module cache.
//! 4. [`live_update`]: wrk against pi while the admin API swaps v1 ↔ v2.
//! 5. [`per_instance`]: instantiation time (metrics histogram) and RSS per concurrent
//!    instance (sleeping requests to the test-faults component), pooling vs `--no-pooling`.
//! 6. [`python`]: the same Python pi code as a Spin-SDK component on fnhost (fresh instance
//!    and reuse) and under Flask natively, with the component's instantiation time and memory.
//! 7. [`models`]: one RandomForest served by fnhost's generic ONNX component, MLServer
//!    (mlserver-sklearn) and onnxruntime behind http.server, on the same V2 request; and
//!    `fnhost new onnx-model` → first 200.
//! 8. the fleet ([`crate::fleet`]): three replicas of the image behind HAProxy, six rollouts
//!    under load, full length. Not in `--quick`: `cargo xtask test` runs `fleet --quick`
//!    itself, in the Docker daemon and with the image it already has.
//!
//! `--quick` (CI) uses small sizes, short wrk runs at one connection count and skips
//! `wasmtime serve`; it runs the same code, starts every server it uses, checks every answer,
//! fails on any error, and writes to `target/bench-quick/` instead of overwriting
//! `BENCHMARKS.md`. `--section` runs the named sections only; the others keep the results of
//! the last run in the same results file.
//!
//! Every server is started by this code and stopped by its PID (also on failure). Load comes
//! from [`wrk`] (closed loop, the maximum rate) and [`oha`] (a fixed rate, for latency).

mod access_log;
mod latency;
mod live_update;
mod log_cost;
mod machine;
mod models;
mod oha;
mod per_instance;
mod pi_compute;
mod plot;
mod python;
mod render;
mod results;
mod servers;
mod serving;
mod startup;
mod stats;
mod timeout_cost;
pub(crate) mod wrk;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{ensure, Context, Result};
use clap::{Args, ValueEnum};
use devkit::install::{ensure_tool, pip_install, PipPackage};
use serde::{Deserialize, Serialize};

use crate::workspace::{build, cargo, target_dir, wasm_dir};
use machine::{loadavg, now_utc, Machine};
use results::{Results, SectionLoad};

#[derive(Args, Clone, Default)]
pub struct Options {
    /// Small sizes and short runs (what CI runs); writes target/bench-quick/
    #[arg(long)]
    pub quick: bool,
    /// Run only this section (repeatable); the others keep their last results
    #[arg(long = "section", value_enum, value_name = "NAME")]
    pub sections: Vec<Section>,
}

impl Options {
    pub fn quick() -> Options {
        Options {
            quick: true,
            sections: Vec::new(),
        }
    }
}

/// The sections, in the order they run and appear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Section {
    PiCompute,
    Serving,
    TimeoutCost,
    LogCost,
    Latency,
    Startup,
    LiveUpdate,
    PerInstance,
    Python,
    Models,
    Fleet,
}

impl Section {
    /// The name in the load table.
    pub fn title(self) -> &'static str {
        match self {
            Section::PiCompute => "1. pi compute",
            Section::Serving => "2. serving",
            Section::TimeoutCost => "2b. timeout cost",
            Section::LogCost => "2c. access log cost",
            Section::Latency => "2d. latency at half load",
            Section::Startup => "3. start-up",
            Section::LiveUpdate => "4. live update",
            Section::PerInstance => "5. per-instance cost",
            Section::Python => "6. Python pi",
            Section::Models => "7. model serving",
            Section::Fleet => "8. fleet",
        }
    }
}

/// Where a run reads and writes, and what it runs.
pub struct Ctx {
    pub quick: bool,
    pub root: PathBuf,
    /// Where BENCHMARKS.md goes.
    pub md_path: PathBuf,
    pub json_path: PathBuf,
    /// Directory of the PNGs, and the same as a link relative to md_path.
    pub png_dir: PathBuf,
    pub png_rel: String,
    /// Scratch: manifests, caches, logs.
    pub work: PathBuf,
    pub fnhost: PathBuf,
    pub control: PathBuf,
    pub wasm_dir: PathBuf,
    pub wasmtime: Option<PathBuf>,
}

pub fn run(root: &Path, options: &Options) -> Result<()> {
    let started = Instant::now();
    let ctx = prepare(root, options.quick)?;
    let all = options.sections.is_empty();
    let mut command = String::from("cargo xtask bench");
    if ctx.quick {
        command.push_str(" --quick");
    }
    for s in &options.sections {
        let v = s.to_possible_value().expect("no skipped sections");
        command.push_str(&format!(" --section {}", v.get_name()));
    }
    let machine = Machine::describe(ctx.wasmtime.as_deref())?;
    let mut results = match (all, Results::load(&ctx.json_path)) {
        (false, Some(previous)) if previous.quick == ctx.quick => previous,
        _ => Results::empty(ctx.quick),
    };
    results.start_run(command, now_utc()?, machine);
    for section in Section::value_variants() {
        if !(all || options.sections.contains(section)) {
            continue;
        }
        if *section == Section::Fleet && ctx.quick {
            println!("bench: the fleet section is not part of --quick (`cargo xtask test` runs `cargo xtask fleet --quick`)");
            continue;
        }
        let before = loadavg();
        let t = Instant::now();
        measure(&ctx, *section, &mut results)
            .with_context(|| format!("benchmark {}", section.title()))?;
        results.record_load(SectionLoad {
            section: *section,
            run: results.generated.clone(),
            before,
            after: loadavg(),
            seconds: t.elapsed().as_secs_f64(),
        });
        render::save(&ctx, &mut results)?;
    }
    results.total_seconds = Some(started.elapsed().as_secs_f64());
    render::save(&ctx, &mut results)?;
    println!(
        "bench: done in {:.0} s: {} and {}",
        started.elapsed().as_secs_f64(),
        ctx.md_path.display(),
        ctx.json_path.display()
    );
    Ok(())
}

fn measure(ctx: &Ctx, section: Section, results: &mut Results) -> Result<()> {
    match section {
        Section::PiCompute => results.pi = Some(pi_compute::run(ctx)?),
        Section::Serving => results.serving = Some(serving::run(ctx)?),
        Section::TimeoutCost => results.timeout_cost = Some(timeout_cost::run(ctx)?),
        Section::LogCost => results.log_cost = Some(log_cost::run(ctx)?),
        Section::Latency => results.latency = Some(latency::run(ctx)?),
        Section::Startup => results.startup = Some(startup::run(ctx)?),
        Section::LiveUpdate => results.live_update = Some(live_update::run(ctx)?),
        Section::PerInstance => results.per_instance = Some(per_instance::run(ctx)?),
        Section::Python => results.python = Some(python::run(ctx)?),
        Section::Models => results.models = Some(models::run(ctx)?),
        Section::Fleet => results.fleet = Some(crate::fleet::run(&ctx.root, false)?),
    }
    Ok(())
}

fn prepare(root: &Path, quick: bool) -> Result<Ctx> {
    build(true)?;
    devkit::cmd::run(cargo().args(["build", "--release", "-p", "native-control"]))?;
    // pi for side-by-side runs with `wasmtime serve` (see servers::PORTABLE_PI); its own target
    // directory, so the workspace's pi_chudnovsky.wasm stays the one spin.toml serves.
    devkit::cmd::run(
        crate::workspace::cargo_wide_arithmetic(&root.join(servers::PORTABLE_PI_TARGET)).args([
            "-p",
            "pi-chudnovsky",
            "--no-default-features",
        ]),
    )?;
    ensure!(
        root.join(servers::PORTABLE_PI).exists(),
        "{} is missing after its build",
        servers::PORTABLE_PI
    );
    ensure_tool("wrk", &["wrk"])?;
    pip_install(&[PipPackage::named("mpmath"), PipPackage::named("gmpy2")])?;
    let (md_path, json_path, png_dir, png_rel) = if quick {
        let d = target_dir().join("bench-quick");
        (
            d.join("BENCHMARKS.md"),
            d.join("results.json"),
            d.clone(),
            String::new(),
        )
    } else {
        (
            root.join("BENCHMARKS.md"),
            root.join("bench/results.json"),
            root.join("bench"),
            "bench/".to_string(),
        )
    };
    std::fs::create_dir_all(&png_dir)?;
    let work = target_dir().join(if quick {
        "bench-quick/work"
    } else {
        "bench-work"
    });
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let wasm_dir = wasm_dir();
    for w in [
        "pi_chudnovsky",
        "pi_picrunch",
        "iris",
        "onnx_model",
        "test_faults",
        "pi_python",
    ] {
        let p = wasm_dir.join(format!("{w}.wasm"));
        ensure!(p.exists(), "{} is missing after the build", p.display());
    }
    let wasmtime = if quick {
        None
    } else {
        servers::find_wasmtime()
    };
    if !quick && wasmtime.is_none() {
        println!("bench: `wasmtime` (wasmtime-cli 48) not found: the wasmtime serve comparison is skipped");
    }
    Ok(Ctx {
        quick,
        root: root.to_path_buf(),
        md_path,
        json_path,
        png_dir,
        png_rel,
        work,
        fnhost: target_dir().join("release/fnhost"),
        control: target_dir().join("release/native-control"),
        wasm_dir,
        wasmtime,
    })
}
