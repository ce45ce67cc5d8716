//! The workspace: where it is, how its crates are built, and the test run CI makes
//! (`cargo xtask test`). Builds use the release profile that tests, serving and benchmarks share.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use devkit::cmd::{capture, run};
use devkit::install::{pip_install, PipPackage};
use devkit::python::{activated, spin_sdk_venv, PythonComponent};

use crate::docker::Dockerd;
use crate::{bench, fleet, image, k8s};

/// The components `cargo xtask up` serves (crate names), built as the workspace's release
/// profile says; the pi components are [`WIDE_ARITHMETIC_FUNCTIONS`].
const FUNCTIONS: &[&str] = &["iris", "onnx-model"];
/// Components compiled with wasm's `wide-arithmetic` proposal, and only these: pi's limb
/// arithmetic multiplies 64×64→128 bits, one `i64.mul_wide_u` instead of a `__multi3` call
/// (4–5× faster at 10^4 digits and more, bench/analysis.md). The LLVM in rustc 1.95 miscompiles
/// some uses of those instructions — `3i64.checked_mul(4)` is `None` (llvm-project#199910,
/// fixed in LLVM after this rustc) — so no other component gets the feature: pi's output is
/// checked digit for digit against a reference in the tests, a model server's is not.
const WIDE_ARITHMETIC_FUNCTIONS: &[(&str, &str)] = &[
    ("pi-chudnovsky", "pi_chudnovsky.wasm"),
    ("pi-picrunch", "pi_picrunch.wasm"),
];
/// The target directory of [`WIDE_ARITHMETIC_FUNCTIONS`] (their flags differ from the other
/// components', and sharing one directory would rebuild the dependencies at every switch).
const WIDE_ARITHMETIC_TARGET: &str = "wide-arithmetic";
/// Python functions (built with Spin's Python SDK): source directory, module, component file.
const PYTHON_FUNCTIONS: &[(&str, &str, &str)] = &[("functions/pi-python", "app", "pi_python.wasm")];
/// Test-only components used by the end-to-end tests.
const TEST_COMPONENTS: &[&str] = &["test-faults", "test-hello-p2"];
/// Native crates whose tests `cargo xtask test` runs.
const NATIVE_TEST_CRATES: &[&str] = &[
    "fnhost",
    "pi-core",
    "iris-core",
    "iris-train",
    "onnx-core",
    "onnx-venv",
    "fn-reply",
    "fn-features",
    "fn-file-stamp",
    "e2e",
    "devkit",
    "xtask",
];

/// Spin's manifest JSON Schema, vendored (see `tests/spec/README.md`), from the root.
pub const SPIN_SCHEMA: &str = "tests/spec/spin-manifest-v2.schema.json";

pub use devkit::workspace::{root, target_dir};

/// Where `cargo xtask build` puts the components.
pub fn wasm_dir() -> PathBuf {
    target_dir().join("wasm32-wasip2/release")
}

/// `cargo build --release --target wasm32-wasip2` with `wide-arithmetic` on, in
/// `target_dir` (see [`WIDE_ARITHMETIC_FUNCTIONS`]); the caller adds the packages.
pub fn cargo_wide_arithmetic(target_dir: &Path) -> Command {
    let mut c = cargo();
    // Replaces any rustflags of .cargo/config.toml for this build (cargo takes the first set
    // of: CARGO_ENCODED_RUSTFLAGS, RUSTFLAGS, the config's).
    c.env(
        "CARGO_ENCODED_RUSTFLAGS",
        "-Ctarget-feature=+wide-arithmetic",
    );
    c.args([
        "build",
        "--release",
        "--target",
        "wasm32-wasip2",
        "--target-dir",
    ]);
    c.arg(target_dir);
    c
}

/// `cargo`, in the workspace root.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // A set RUST_BACKTRACE makes every WASIp3 request capture a backtrace (~4% CPU).
    c.env_remove("RUST_BACKTRACE").current_dir(root());
    // fnhost embeds the generic model module for `fnhost new onnx-model` (host/build.rs). Set
    // for every cargo run, so that building and testing the host never flip between the two.
    c.env("FNHOST_ONNX_MODEL_WASM", wasm_dir().join("onnx_model.wasm"));
    c
}

fn ensure_wasm_target() -> Result<()> {
    let installed = capture(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if installed.lines().any(|l| l.trim() == "wasm32-wasip2") {
        return Ok(());
    }
    run(Command::new("rustup").args(["target", "add", "wasm32-wasip2"]))
}

/// The host's test that a written page swapped out is still reset for the next instance
/// (host/src/engine/mod.rs) needs swap to page it out: a machine without any gets a 256 MiB
/// swap file in the target directory (root only, like the packages `.ci/run` installs).
fn ensure_swap() -> Result<()> {
    let swaps = std::fs::read_to_string("/proc/swaps").context("reading /proc/swaps")?;
    if swaps.lines().count() > 1 {
        return Ok(());
    }
    let file = target_dir().join("test.swap");
    let path = file
        .to_str()
        .context("the target directory's path is not UTF-8")?;
    println!("== no swap on this machine: turning on {path} for the tests");
    std::fs::create_dir_all(target_dir())?;
    if !file.exists() {
        // swapon refuses a sparse file: the blocks must be allocated.
        run(Command::new("fallocate").args(["-l", "256M", path]))?;
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        run(Command::new("mkswap").arg(path))?;
    }
    run(Command::new("swapon").arg(path)).context(
        "turning on swap for the tests (needs root; or turn on any swap yourself and run again)",
    )
}

/// Builds the components (and the test components when `with_tests`), then whatever else
/// `spin.toml` says how to build (`[component.NAME.build]`, e.g. a component `fnhost new`
/// added; in the Spin SDK venv, activated, so a Python component's componentize-py finds the
/// SDK), then the host (which embeds the generic model module, so it comes last; with the
/// native test targets when `with_tests`).
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
    let wide_target = target_dir().join(WIDE_ARITHMETIC_TARGET);
    let mut wide = cargo_wide_arithmetic(&wide_target);
    for (c, _) in WIDE_ARITHMETIC_FUNCTIONS {
        wide.args(["-p", c]);
    }
    run(&mut wide)?;
    // Next to the other components, where spin.toml and every test look for them.
    for (_, file) in WIDE_ARITHMETIC_FUNCTIONS {
        let from = wide_target.join("wasm32-wasip2/release").join(file);
        std::fs::copy(&from, wasm_dir().join(file))
            .with_context(|| format!("copying {} to {}", from.display(), wasm_dir().display()))?;
    }
    let venv = spin_sdk_venv()?;
    build_python_functions(&venv)?;
    devkit::spin_build::build_components(&root().join("spin.toml"), &activated(&venv)?)?;
    let mut host = cargo();
    host.args(["build", "--release"]);
    if with_tests {
        // The host together with every native test target: cargo then unifies features as
        // `cargo test` will (dev-dependencies included). Built alone, the host resolves some
        // shared dependencies (indexmap, crc32fast, getrandom…) with other feature sets, and
        // `cargo test` compiled wasmtime and everything above it a second time.
        host.arg("--all-targets");
        for c in NATIVE_TEST_CRATES {
            host.args(["-p", c]);
        }
    } else {
        host.args(["-p", "fnhost"]);
    }
    run(&mut host)
}

fn build_python_functions(venv: &Path) -> Result<()> {
    for (dir, module, file) in PYTHON_FUNCTIONS {
        PythonComponent {
            source_dir: &root().join(dir),
            module,
            venv,
        }
        .build(&wasm_dir().join(file))?;
    }
    Ok(())
}

pub fn up(args: &[String]) -> Result<()> {
    build(false)?;
    let root = root();
    run(Command::new(target_dir().join("release/fnhost"))
        .current_dir(&root)
        .args(["up", "--manifest", "spin.toml"])
        .args(args)
        .env_remove("RUST_BACKTRACE"))
}

/// What CI runs: every test suite, then the quick benchmark.
pub fn test() -> Result<()> {
    let root = root();
    ensure_swap()?;
    build(true)?;
    let mut t = cargo();
    t.args(["test", "--release"]);
    for c in NATIVE_TEST_CRATES {
        t.args(["-p", c]);
    }
    run(&mut t)?;
    validate_spin_toml(&root)?;
    k8s::validate(&root)?;
    k8s::flows(&root)?;
    containers(&root)?;
    bench::run(&root, &bench::Options::quick())
}

/// The container tests in one private Docker daemon with one image build: the image end to
/// end, then the fleet's six scenarios, short.
fn containers(root: &Path) -> Result<()> {
    let scratch = devkit::TempDir::new("test-docker");
    let daemon = Dockerd::with_image(root, scratch.path())?;
    let result = image::docker_e2e_in(root, &daemon)
        .and_then(|()| fleet::run_in(root, &daemon, true).map(|_| ()));
    if result.is_err() {
        println!("dockerd log: {}", daemon.log_path().display());
        scratch.keep();
    }
    let stopped = daemon.stop();
    result.and(stopped)
}

/// spin.toml must stay runnable by Spin: validate it against Spin's own JSON Schema.
fn validate_spin_toml(root: &Path) -> Result<()> {
    pip_install(&[PipPackage::named("jsonschema")])?;
    let script = r#"
import json, sys, tomllib, jsonschema
schema = json.load(open(sys.argv[1]))
doc = tomllib.load(open(sys.argv[2], "rb"))
jsonschema.validate(doc, schema)
print(f"{sys.argv[2]}: valid against Spin's manifest schema")
"#;
    run(Command::new("python3")
        .current_dir(root)
        .args(["-c", script, SPIN_SCHEMA, "spin.toml"]))
}

/// The Python environment of `functions/onnx/python` (`target/venv-sklearn`), created or
/// refreshed from its pinned `requirements.txt` when needed.
pub fn sklearn_python() -> Result<PathBuf> {
    onnx_venv::ensure(&root(), &target_dir())
}

/// The scikit-learn model the repository ships for the iris route, as `train.py` names it, and
/// the directory it is served from.
pub const IRIS_ONNX_MODEL: (&str, &str) = ("iris-logistic-regression", "models/iris/onnx");

/// Every model the repository ships: the linfa models of the iris function (`train_iris`)
/// and the scikit-learn model exported to ONNX for the iris route. Training is seeded and the
/// exports are byte-identical from run to run, so running this again changes no file.
pub fn train_models() -> Result<()> {
    train_iris()?;
    let python = sklearn_python()?;
    let (name, dir) = IRIS_ONNX_MODEL;
    run(Command::new(python)
        .current_dir(root())
        .arg(Path::new(onnx_venv::SCRIPTS).join("train.py"))
        .args(["--into", dir, "--only", name]))
}

pub fn train_iris() -> Result<()> {
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
