//! `cargo xtask …`: every developer workflow of fnhost, as code instead of scattered scripts.
//!
//! This file is the command line (clap) and nothing else: each subcommand calls one function
//! of a module. `workspace` builds and tests, `bench` measures, `image` and `k8s` package and
//! deploy, `docker` runs a private Docker daemon for `image` and `fleet` (three replicas
//! behind a load balancer), `fuzz` fuzzes; `devkit` (a crate shared with the end-to-end tests) runs commands,
//! installs packages, starts servers and talks HTTP for all of them.

mod answers;
mod bench;
mod docker;
mod fleet;
mod fuzz;
mod image;
mod k8s;
mod workspace;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "fnhost's developer workflows",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build everything and serve spin.toml (default 127.0.0.1:3000)
    Up {
        /// Further arguments for `fnhost up` (e.g. --listen ADDR)
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "FNHOST UP ARGS"
        )]
        args: Vec<String>,
    },
    /// Build the components (wasm32-wasip2) and the host (release)
    Build,
    /// Every test: unit, components, end-to-end, container, k8s, bench --quick
    Test,
    /// Benchmarks → BENCHMARKS.md and bench/results.json
    Bench(bench::Options),
    /// Static (musl) fnhost in a FROM-scratch Docker image fnhost:dev
    Image,
    /// Render and validate the Kubernetes manifests offline
    K8s,
    /// Write the manifests' spin.toml files with the built modules' digests (and push them)
    K8sManifests(k8s::ManifestOptions),
    /// Replay canary / promote / blue-green ConfigMap updates against fnhost
    K8sFlows,
    /// Build the image and test it in a private Docker daemon
    DockerE2e,
    /// Three replicas of the image behind HAProxy, six rollouts under load
    Fleet {
        /// Hold each state for seconds only (what `cargo xtask test` runs)
        #[arg(long)]
        quick: bool,
    },
    /// Retrain the iris models from functions/iris/data/iris.csv
    TrainIris,
    /// Retrain every model the repository ships (linfa and scikit-learn → ONNX); deterministic
    TrainModels,
    /// Run the cargo-fuzz targets (nightly)
    Fuzz(fuzz::Options),
}

fn main() -> std::process::ExitCode {
    let root = workspace::root();
    let result = match Cli::parse().command {
        Task::Up { args } => workspace::up(&args),
        Task::Build => workspace::build(false),
        Task::Test => workspace::test(),
        Task::Bench(options) => bench::run(&root, &options),
        Task::Image => image::build_image(&root),
        Task::K8s => k8s::validate(&root),
        Task::K8sManifests(options) => k8s::manifests(&root, &options),
        Task::K8sFlows => k8s::flows(&root),
        Task::DockerE2e => image::docker_e2e(&root),
        Task::Fleet { quick } => fleet::run(&root, quick).map(|_| ()),
        Task::TrainIris => workspace::train_iris(),
        Task::TrainModels => workspace::train_models(),
        Task::Fuzz(options) => fuzz::run(&root, &options),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
