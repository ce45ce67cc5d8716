//! WASI 0.3 release candidates served by the 0.3.0 implementations.
//!
//! Toolchains of one generation import the final WASI 0.3.0 interfaces *and* a release candidate
//! of them (Spin's Python SDK 5: `…@0.3.0-rc-2026-03-15`). A linker matches versions by semver,
//! which never relates a prerelease to a release, so each candidate name is bound here to the
//! same host functions as `@0.3.0`: the bindgen-generated `add_to_linker_instance` of each
//! interface, called on an instance named with the candidate's version. Host resources are keyed
//! by their Rust type, so a `fields` made through one name is the same resource through the
//! other. Whether a candidate really has the 0.3.0 types is checked where it counts: the linker
//! type-checks every import against these functions when a component is linked, and an interface
//! that differs falls to `unsupported` (named at load) instead of being served wrongly.

use anyhow::Result;
use wasmtime::component::Linker;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p3::bindings as wasi;
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
use wasmtime_wasi::WasiView;
use wasmtime_wasi_http::p3::bindings::http;
use wasmtime_wasi_http::{WasiHttp, WasiHttpView};

/// The release candidates served, newest first.
pub const CANDIDATES: &[&str] = &["0.3.0-rc-2026-03-15"];

pub fn add_to_linker<T: WasiView + WasiHttpView + 'static>(linker: &mut Linker<T>) -> Result<()> {
    for version in CANDIDATES {
        add_version(linker, version)?;
    }
    Ok(())
}

fn add_version<T: WasiView + WasiHttpView + 'static>(
    linker: &mut Linker<T>,
    version: &str,
) -> Result<()> {
    macro_rules! bind {
        ($interface:literal, $module:path, $data:ty, $getter:expr) => {{
            use $module as m;
            m::add_to_linker_instance::<T, $data>(
                &mut linker.instance(&format!("{}@{version}", $interface))?,
                $getter,
            )?;
        }};
    }
    bind!(
        "wasi:cli/environment",
        wasi::cli::environment,
        WasiCli,
        T::cli
    );
    bind!("wasi:cli/exit", wasi::cli::exit, WasiCli, T::cli);
    bind!("wasi:cli/stdin", wasi::cli::stdin, WasiCli, T::cli);
    bind!("wasi:cli/stdout", wasi::cli::stdout, WasiCli, T::cli);
    bind!("wasi:cli/stderr", wasi::cli::stderr, WasiCli, T::cli);
    bind!(
        "wasi:cli/terminal-input",
        wasi::cli::terminal_input,
        WasiCli,
        T::cli
    );
    bind!(
        "wasi:cli/terminal-output",
        wasi::cli::terminal_output,
        WasiCli,
        T::cli
    );
    bind!(
        "wasi:cli/terminal-stdin",
        wasi::cli::terminal_stdin,
        WasiCli,
        T::cli
    );
    bind!(
        "wasi:cli/terminal-stdout",
        wasi::cli::terminal_stdout,
        WasiCli,
        T::cli
    );
    bind!(
        "wasi:cli/terminal-stderr",
        wasi::cli::terminal_stderr,
        WasiCli,
        T::cli
    );
    bind!(
        "wasi:clocks/types",
        wasi::clocks::types,
        WasiClocks,
        T::clocks
    );
    bind!(
        "wasi:clocks/monotonic-clock",
        wasi::clocks::monotonic_clock,
        WasiClocks,
        T::clocks
    );
    bind!(
        "wasi:clocks/system-clock",
        wasi::clocks::system_clock,
        WasiClocks,
        T::clocks
    );
    bind!(
        "wasi:filesystem/types",
        wasi::filesystem::types,
        WasiFilesystem,
        T::filesystem
    );
    bind!(
        "wasi:filesystem/preopens",
        wasi::filesystem::preopens,
        WasiFilesystem,
        T::filesystem
    );
    bind!(
        "wasi:random/random",
        wasi::random::random,
        WasiRandom,
        T::random
    );
    bind!(
        "wasi:random/insecure",
        wasi::random::insecure,
        WasiRandom,
        T::random
    );
    bind!(
        "wasi:random/insecure-seed",
        wasi::random::insecure_seed,
        WasiRandom,
        T::random
    );
    bind!(
        "wasi:sockets/types",
        wasi::sockets::types,
        WasiSockets,
        T::sockets
    );
    bind!(
        "wasi:sockets/ip-name-lookup",
        wasi::sockets::ip_name_lookup,
        WasiSockets,
        T::sockets
    );
    bind!("wasi:http/types", http::types, WasiHttp, T::http);
    bind!("wasi:http/client", http::client, WasiHttp, T::http);
    Ok(())
}
