//! `fnhost`: serve WebAssembly HTTP functions from a Spin manifest, and change them live.
//!
//! This file is only the command line: `fnhost up` starts the host (see `up.rs`), `fnhost new`
//! scaffolds a component (see `new/`); `push` and `pull` are a registry client (see
//! `sources/commands.rs`); the other subcommands are clients of a running host's admin API (see
//! `admin/client.rs`).

use clap::{Parser, Subcommand};
use fnhost::admin::api::{Op, OpParams};
use fnhost::admin::client;
#[cfg(feature = "new")]
use fnhost::new;
use fnhost::sources::commands as registry;
use fnhost::up;

/// mimalloc, not the C library's malloc: per request the host allocates and frees on both
/// tokio threads, and the static musl build in the Docker image has a slow malloc
/// (bench/analysis.md, "the allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "fnhost",
    version,
    about = "Serve WebAssembly HTTP functions from a Spin manifest, with live updates"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the manifest's routes (and the admin API on its own listener).
    Up(up::UpOptions),
    /// Add a component to an application from a template (creating its spin.toml if needed).
    #[cfg(feature = "new")]
    New(new::NewArgs),
    /// Show every component's current, candidate and previous version.
    Status(client::Target),
    /// Replace a component's current version (rolling swap; the old one stays loaded for rollback).
    Deploy(client::VersionArgs),
    /// Send a share of traffic to a new candidate version.
    Canary(client::CanaryArgs),
    /// Load a candidate at 0% (reachable only with the `fnhost-version-pin: candidate` header).
    Stage(client::VersionArgs),
    /// Blue/green: make the candidate current at once; run again to switch back.
    Switch(client::ComponentArgs),
    /// Make the candidate the current version.
    Promote(client::ComponentArgs),
    /// Drop the candidate, or with none, return to the previous version.
    Rollback(client::ComponentArgs),
    /// Change the candidate's traffic share.
    Weight(client::WeightArgs),
    /// Set, rotate or remove the key that lets a request pin a version (fnhost-pin-key).
    PinKey(client::PinKeyArgs),
    /// Push a component to an OCI registry (CNCF Wasm artifact); prints the manifest digest.
    Push(registry::PushArgs),
    /// Pull a component from an OCI registry.
    Pull(registry::PullArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(opts) => up::run(opts),
        #[cfg(feature = "new")]
        Command::New(args) => new::run(args),
        Command::Status(t) => client::status(t),
        Command::Deploy(a) => client::version_op(Op::Deploy, a, OpParams::default()),
        Command::Canary(a) => client::canary(a),
        Command::Stage(a) => client::version_op(Op::Stage, a, OpParams::default()),
        Command::Switch(a) => client::component_op(Op::Switch, a),
        Command::Promote(a) => client::component_op(Op::Promote, a),
        Command::Rollback(a) => client::component_op(Op::Rollback, a),
        Command::Weight(a) => client::weight(a),
        Command::PinKey(a) => client::pin_key(a),
        Command::Push(a) => registry::push(a),
        Command::Pull(a) => registry::pull(a),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
