//! `cargo xtask …`: every developer workflow of fnhost, as code instead of scattered scripts.
//!
//! Each subcommand is a small function that prints the commands it runs. `build` compiles the
//! components (wasm32-wasip2) and the host once, in the release profile that tests, serving and
//! benchmarks share; `test` runs every test suite CI runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The components `cargo xtask up` serves (crate names).
const FUNCTIONS: &[&str] = &["pi-chudnovsky", "pi-picrunch", "iris"];
/// Test-only components used by the end-to-end tests.
const TEST_COMPONENTS: &[&str] = &["test-faults", "test-hello-p2"];
/// Native crates whose tests `cargo xtask test` runs.
const NATIVE_TEST_CRATES: &[&str] = &["fnhost", "pi-core", "iris-core", "iris-train", "e2e"];

const USAGE: &str = "usage: cargo xtask <command>

  up [--listen ADDR] [FNHOST UP ARGS…]  build everything and serve spin.toml (default 127.0.0.1:3000)
  build                                 build the components (wasm32-wasip2) and the host (release)
  test                                  every test: unit, components, end-to-end, container, k8s, bench --quick
  bench [--quick]                       benchmarks → BENCHMARKS.md and bench/results.json
  image                                 static (musl) fnhost in a FROM-scratch Docker image fnhost:dev
  k8s                                   render and validate the Kubernetes manifests offline
  k8s-manifests --modules-url URL       write the manifests' spin.toml files with the built modules' digests
  k8s-flows                             replay canary / promote / blue-green ConfigMap updates against fnhost
  docker-e2e                            build the image and test it in a private Docker daemon
  train-iris                            retrain the iris models from functions/iris/data/iris.csv
  fuzz [TARGET] [--seconds N]           run the cargo-fuzz targets (nightly)";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("up") => up(&args[1..]),
        Some("build") => build(false),
        Some("test") => test(),
        Some("bench") => bench::run(&root(), args[1..].iter().any(|a| a == "--quick")),
        Some("image") => image::build_image(&root()),
        Some("k8s") => k8s::validate(&root()),
        Some("k8s-manifests") => match args
            .iter()
            .position(|a| a == "--modules-url")
            .and_then(|i| args.get(i + 1))
        {
            Some(url) => k8s::manifests(&root(), url),
            None => Err(anyhow::anyhow!(
                "usage: cargo xtask k8s-manifests --modules-url URL"
            )),
        },
        Some("k8s-flows") => k8s::flows(&root()),
        Some("docker-e2e") => image::docker_e2e(&root()),
        Some("train-iris") => train_iris(),
        Some("fuzz") => fuzz::run(&root(), &args[1..]),
        _ => {
            eprintln!("{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

mod bench;
mod fuzz;
mod image;
mod k8s;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs a command in the workspace root, echoing it first; fails on a non-zero exit.
pub fn run(cmd: &mut Command) -> Result<()> {
    cmd.current_dir(root());
    eprintln!("$ {}", shown(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", shown(cmd)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", shown(cmd));
    }
    Ok(())
}

pub fn shown(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // A set RUST_BACKTRACE makes every WASIp3 request capture a backtrace (~4% CPU).
    c.env_remove("RUST_BACKTRACE");
    c
}

fn ensure_wasm_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out)
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == "wasm32-wasip2") =>
        {
            Ok(())
        }
        _ => run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"])),
    }
}

/// Builds the components (and the test components when `with_tests`) and the host.
pub fn build(with_tests: bool) -> Result<()> {
    ensure_wasm_target()?;
    let mut wasm = cargo();
    wasm.args(["build", "--release", "--target", "wasm32-wasip2"]);
    for c in FUNCTIONS
        .iter()
        .chain(if with_tests { TEST_COMPONENTS } else { &[] })
    {
        wasm.args(["-p", c]);
    }
    run(&mut wasm)?;
    run(cargo().args(["build", "--release", "-p", "fnhost"]))
}

fn up(args: &[String]) -> Result<()> {
    build(false)?;
    let mut cmd = Command::new(root().join("target/release/fnhost"));
    cmd.args(["up", "--manifest", "spin.toml"])
        .args(args)
        .env_remove("RUST_BACKTRACE");
    run(&mut cmd)
}

fn test() -> Result<()> {
    build(true)?;
    let mut t = cargo();
    t.args(["test", "--release"]);
    for c in NATIVE_TEST_CRATES {
        t.args(["-p", c]);
    }
    run(&mut t)?;
    validate_spin_toml()?;
    k8s::validate(&root())?;
    k8s::flows(&root())?;
    image::docker_e2e(&root())?;
    bench::run(&root(), true)
}

/// spin.toml must stay runnable by Spin: validate it against Spin's own JSON Schema.
fn validate_spin_toml() -> Result<()> {
    pip_install(&["jsonschema"])?;
    let script = r#"
import json, sys, tomllib, jsonschema
schema = json.load(open(sys.argv[1]))
doc = tomllib.load(open(sys.argv[2], "rb"))
jsonschema.validate(doc, schema)
print(f"{sys.argv[2]}: valid against Spin's manifest schema")
"#;
    run(Command::new("python3").args([
        "-c",
        script,
        "../shared/spec/spin-manifest-v2.schema.json",
        "spin.toml",
    ]))
}

/// Installs Python packages if they are not importable yet.
pub fn pip_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| {
            let module = p.split(['=', '<', '>']).next().unwrap().replace('-', "_");
            !Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(&missing))
}

fn train_iris() -> Result<()> {
    run(cargo().args([
        "run",
        "--release",
        "-p",
        "iris-train",
        "--",
        "--data",
        "functions/iris/data/iris.csv",
        "--out",
        "models/iris",
    ]))
}
