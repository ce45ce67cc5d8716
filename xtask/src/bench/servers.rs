//! The servers the benchmark measures, started by it and stopped by PID (devkit's launcher):
//! fnhost, `wasmtime serve` and the native control, each with the command line the report
//! shows; the manifests they serve; and the checked requests made to them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use devkit::http::{Client, Response};
use devkit::process::Server;

use super::wrk::{self, WrkResult};
use super::Ctx;
use crate::answers::{check_pi, check_setosa};

/// Admin bearer token of every fnhost the benchmark starts.
pub const TOKEN: &str = "bench-admin-token-0123456789abcdef";
/// The compiled-module cache's signing key of every fnhost the benchmark starts: hosts with
/// their own state directories share a cache (the model section's warm `fnhost new`), as
/// replicas sharing a cache volume do, so they must share the key.
pub const CACHE_KEY: &str = "bench-cache-key-0123456789abcdef";
pub const IRIS_PATH: &str = "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.3";
pub const PI_PATH: &str = "/api/v0/pi?ndigits=100";
/// A compute-bound pi request: about 2.5 ms of guest arithmetic, mostly tight loops.
pub const PI_10K_PATH: &str = "/api/v0/pi?ndigits=10000";

/// How the native control is started, as shown in the report.
pub const NATIVE_SHOWN: &str =
    "target/release/native-control --listen $ADDR --model models/iris/v1/model.json";

/// A request on a new connection, as every measurement and check here makes it.
pub fn http(timeout: Duration) -> Client {
    Client::fresh_connections(timeout)
}

pub fn get(addr: &str, path: &str, timeout: Duration) -> Result<Response> {
    http(timeout).get(&format!("http://{addr}{path}"))
}

/// A right answer on `path`: pi (`/api/v0/pi?ndigits=N`, every digit) or iris (setosa).
pub fn check_route(ctx: &Ctx, addr: &str, path: &str) -> Result<()> {
    let r = get(addr, path, Duration::from_secs(30))?;
    match path.strip_prefix("/api/v0/pi?ndigits=") {
        Some(n) => check_pi(&ctx.root, &r, n.parse()?).map(drop),
        None => check_setosa(&r),
    }
}

/// One recorded wrk run of `conns` connections for `secs` s on `addr` `path`, the answer
/// checked before and after; a full run is preceded by an unrecorded 1-second warm-up. Failed
/// requests stop a quick (CI) run and are a warning in a full one, which reports them.
pub fn checked_wrk(
    ctx: &Ctx,
    what: &str,
    addr: &str,
    path: &str,
    conns: u32,
    secs: u32,
) -> Result<WrkResult> {
    check_route(ctx, addr, path)?;
    let url = format!("http://{addr}{path}");
    if !ctx.quick {
        wrk::run(&url, conns, 1)?; // warm-up, not recorded
    }
    let w = wrk::run(&url, conns, secs)?;
    if !w.clean() {
        let msg = format!(
            "{what} c={conns}: {} non-2xx, {} socket errors, {} requests",
            w.non2xx, w.socket_errors, w.requests
        );
        if ctx.quick {
            bail!(msg);
        }
        println!("bench: WARNING {msg}");
    }
    check_route(ctx, addr, path)?;
    Ok(w)
}

/// One unmeasured, checked request for 10 digits (first touch of the pool and the code pages).
pub fn warm_up_pi(ctx: &Ctx, addr: &str, route: &str) -> Result<()> {
    let r = get(
        addr,
        &format!("{route}?ndigits=10"),
        Duration::from_secs(60),
    )?;
    check_pi(&ctx.root, &r, 10).map(drop)
}

/// A running fnhost serving a manifest, with `--no-watch`.
pub struct Fnhost {
    pub server: Server,
    pub addr: String,
    pub admin: String,
}

impl Fnhost {
    /// Spawns fnhost (without waiting for it).
    pub fn spawn(
        ctx: &Ctx,
        name: &str,
        manifest: &Path,
        cache: &Path,
        extra: &[&str],
    ) -> Result<Fnhost> {
        let [addr, admin] = devkit::net::free_addrs::<2>().map(|a| a.to_string());
        let state = ctx.work.join(format!("state-{name}"));
        std::fs::create_dir_all(&state)?;
        let mut cmd = Command::new(&ctx.fnhost);
        cmd.current_dir(&ctx.root)
            .args(["up", "--manifest"])
            .arg(manifest)
            .args(["--listen", &addr, "--admin-listen", &admin, "--cache-dir"])
            .arg(cache)
            .arg("--state-dir")
            .arg(&state)
            .arg("--no-watch")
            .args(extra)
            .env("FNHOST_ADMIN_TOKEN", TOKEN)
            .env("FNHOST_CACHE_KEY", CACHE_KEY)
            .env_remove("RUST_BACKTRACE");
        let server = Server::spawn(name, &mut cmd, &ctx.work.join(format!("{name}.log")))?;
        Ok(Fnhost {
            server,
            addr,
            admin,
        })
    }

    /// Spawns fnhost and waits until every component is loaded (`/readyz`).
    pub fn start(
        ctx: &Ctx,
        name: &str,
        manifest: &Path,
        cache: &Path,
        extra: &[&str],
    ) -> Result<Fnhost> {
        let mut host = Fnhost::spawn(ctx, name, manifest, cache, extra)?;
        host.server
            .wait_http_ok(&host.addr, "/readyz", Duration::from_secs(300))?;
        Ok(host)
    }

    /// An admin API call (POST with an empty body, or GET).
    pub fn admin(&self, method: &str, path: &str, timeout: Duration) -> Result<Response> {
        http(timeout).request(
            method,
            &format!("http://{}{path}", self.admin),
            &[("authorization", &format!("Bearer {TOKEN}"))],
            None,
        )
    }

    /// The Prometheus text of `/metrics`.
    pub fn metrics(&self) -> Result<String> {
        let r = self.admin("GET", "/metrics", Duration::from_secs(10))?;
        ensure!(r.status == 200, "GET /metrics: {} {}", r.status, r.text());
        Ok(r.text())
    }
}

/// The command line shown for an fnhost server in the report.
pub fn fnhost_shown(manifest: &str, extra: &str) -> String {
    format!(
        "FNHOST_ADMIN_TOKEN=… target/release/fnhost up --manifest {manifest} --listen $ADDR --admin-listen $ADMIN --cache-dir DIR --state-dir DIR --no-watch{extra}"
    )
}

/// Spawns the native control (without waiting for it); returns it and its address.
pub fn spawn_native(ctx: &Ctx, name: &str) -> Result<(Server, String)> {
    let [addr] = devkit::net::free_addrs::<1>().map(|a| a.to_string());
    let mut cmd = Command::new(&ctx.control);
    cmd.current_dir(&ctx.root)
        .args(["--listen", &addr, "--model", "models/iris/v1/model.json"]);
    let server = Server::spawn(name, &mut cmd, &ctx.work.join(format!("{name}.log")))?;
    Ok((server, addr))
}

/// The native control, answering `/healthz`.
pub fn start_native(ctx: &Ctx, name: &str) -> Result<(Server, String)> {
    let (mut server, addr) = spawn_native(ctx, name)?;
    server.wait_http_ok(&addr, "/healthz", Duration::from_secs(30))?;
    Ok((server, addr))
}

/// `wasmtime serve` of one component; `reuse1` adds `--max-instance-reuse-count 1`.
fn wasmtime_args(wasm: &str, reuse1: bool) -> Vec<String> {
    let mut a: Vec<String> = ["serve", "-Scli", "-W", "wide-arithmetic=y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if reuse1 {
        a.extend(["--max-instance-reuse-count".into(), "1".into()]);
    }
    if wasm == "iris" {
        a.extend(["--dir".into(), "models/iris/v1::/model".into()]);
    }
    a.push(wasmtime_module(wasm));
    a
}

/// `wasmtime serve` of `wasm` with `extra` options, answering 200 on `probe`.
pub fn start_wasmtime(
    ctx: &Ctx,
    name: &str,
    wasm: &str,
    reuse1: bool,
    extra: &[&str],
    probe: &str,
) -> Result<(Server, String)> {
    let exe = ctx.wasmtime.as_ref().context("no wasmtime")?;
    let [addr] = devkit::net::free_addrs::<1>().map(|a| a.to_string());
    let mut cmd = Command::new(exe);
    cmd.current_dir(&ctx.root).env_remove("RUST_BACKTRACE");
    let args = wasmtime_args(wasm, reuse1);
    cmd.args(&args[..4])
        .args(extra)
        .args(["--addr", &addr])
        .args(&args[4..]);
    let mut server = Server::spawn(name, &mut cmd, &ctx.work.join(format!("{name}.log")))?;
    server.wait_http_ok(&addr, probe, Duration::from_secs(120))?;
    Ok((server, addr))
}

pub fn wasmtime_shown(wasm: &str, reuse1: bool, extra: &[&str]) -> String {
    let args = wasmtime_args(wasm, reuse1);
    let extra: String = extra.iter().map(|e| format!(" {e}")).collect();
    format!(
        "wasmtime {}{extra} --addr $ADDR {}",
        args[..4].join(" "),
        args[4..].join(" ")
    )
}

/// `wasmtime` (wasmtime-cli) from cargo's bin directory or PATH, if it runs.
pub fn find_wasmtime() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/wasmtime"));
    }
    candidates.extend(devkit::install::find_tool("wasmtime"));
    candidates
        .into_iter()
        .find(|p| devkit::cmd::succeeds(Command::new(p).arg("--version")))
}

/// A manifest in the scratch directory.
pub fn write_manifest(ctx: &Ctx, file: &str, text: &str) -> Result<PathBuf> {
    let p = ctx.work.join(file);
    std::fs::write(&p, text)?;
    Ok(p)
}

/// The repository root in manifests as the report shows (and results.json keeps) them.
pub const ROOT_SHOWN: &str = "$ROOT";

/// pi v2 built without Spin's variables (`--no-default-features`, into its own target
/// directory by [`super::prepare`]): it imports only WASI and wasi:http, so `wasmtime serve`
/// runs it, and where the benchmark compares the two hosts both serve this one module.
pub const PORTABLE_PI: &str = "target/bench-portable/wasm32-wasip2/release/pi_chudnovsky.wasm";
/// The portable pi's cargo target directory, relative to the root.
pub const PORTABLE_PI_TARGET: &str = "target/bench-portable";

/// The module file `wasmtime serve` runs for `wasm`, relative to the root.
fn wasmtime_module(wasm: &str) -> String {
    if wasm == "pi_chudnovsky" {
        PORTABLE_PI.to_string()
    } else {
        format!("target/wasm32-wasip2/release/{wasm}.wasm")
    }
}

/// spin.toml as fnhost serves it side by side with `wasmtime serve`: absolute paths, pi from
/// [`PORTABLE_PI`], and `instance_reuse = n` for every component when `reuse` is given.
pub fn side_by_side_manifest(ctx: &Ctx, reuse: Option<u32>) -> Result<String> {
    let mut text = std::fs::read_to_string(ctx.root.join("spin.toml"))?;
    let root = ctx.root.display().to_string();
    for (from, to) in [
        (
            "source = \"target/wasm32-wasip2/release/pi_chudnovsky.wasm\"".to_string(),
            format!("source = \"{root}/{PORTABLE_PI}\""),
        ),
        (
            "source = \"target/".to_string(),
            format!("source = \"{root}/target/"),
        ),
        (
            "source = \"models/".to_string(),
            format!("source = \"{root}/models/"),
        ),
    ] {
        ensure!(
            text.contains(&from),
            "spin.toml has no `{from}`: update xtask/src/bench/servers.rs"
        );
        text = text.replace(&from, &to);
    }
    let Some(n) = reuse else {
        return Ok(text);
    };
    for comp in ["pi", "iris"] {
        let table = format!("[component.{comp}.tool.fnhost]");
        if let Some(i) = text.find(&table) {
            let at = i + table.len();
            text.insert_str(at, &format!("\ninstance_reuse = {n}"));
        } else {
            write!(text, "\n{table}\ninstance_reuse = {n}\n")?;
        }
    }
    Ok(text)
}
