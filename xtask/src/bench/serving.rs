//! Section 2, serving: wrk against iris GET and pi `ndigits=100` on fnhost (a fresh instance
//! per request, and `instance_reuse = 128`), `wasmtime serve` (fresh and at its default) and
//! the native control; every server's answer checked before and after each run.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::servers::{
    checked_wrk, fnhost_shown, side_by_side_manifest, start_native, start_wasmtime, wasmtime_shown,
    write_manifest, Fnhost, IRIS_PATH, NATIVE_SHOWN, PI_PATH,
};
use super::wrk::{self, WrkResult};
use super::Ctx;

/// The routes measured: name in the tables, path, and the component `wasmtime serve` serves.
pub const ROUTES: [(&str, &str, &str); 2] = [
    ("iris GET", IRIS_PATH, "iris"),
    ("pi ndigits=100", PI_PATH, "pi_chudnovsky"),
];

/// The servers in the order the tables list them.
pub const SERVERS: [&str; 5] = [
    "fnhost fresh",
    "wasmtime serve fresh",
    "fnhost reuse128",
    "wasmtime serve default",
    "native",
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Serving {
    pub seconds_per_run: u32,
    /// Connection counts, in the order measured.
    pub conns: Vec<u32>,
    /// Whether each measured run followed an unrecorded 1-second one.
    pub warm_up: bool,
    /// fnhost's default concurrency limit on this machine (4 × cores).
    pub fnhost_max_concurrent_requests: usize,
    pub servers: Vec<ServerCommand>,
    pub wrk: String,
    pub runs: Vec<ServeRun>,
}

/// A server as the report shows how to start it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerCommand {
    pub name: String,
    pub command: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServeRun {
    pub route: String,
    pub server: String,
    pub conns: u32,
    #[serde(flatten)]
    pub wrk: WrkResult,
}

impl Serving {
    /// req/s of `server` on `route` at `conns` connections, if measured.
    pub fn rps(&self, route: &str, server: &str, conns: u32) -> Option<f64> {
        self.runs
            .iter()
            .find(|r| r.route == route && r.server == server && r.conns == conns)
            .map(|r| r.wrk.rps)
    }
}

pub fn run(ctx: &Ctx) -> Result<Serving> {
    let conns: Vec<u32> = if ctx.quick { vec![16] } else { vec![1, 16, 64] };
    let secs = if ctx.quick { 2 } else { 10 };
    let mut runs: Vec<ServeRun> = Vec::new();
    let mut servers: Vec<ServerCommand> = Vec::new();
    let measure = |server: &str, addr: &str, route: &str, path: &str, runs: &mut Vec<ServeRun>| {
        for &c in &conns {
            let w = checked_wrk(ctx, &format!("{server} {route}"), addr, path, c, secs)?;
            runs.push(ServeRun {
                route: route.to_string(),
                server: server.to_string(),
                conns: c,
                wrk: w,
            });
        }
        anyhow::Ok(())
    };

    // fnhost, fresh instance per request and instance_reuse = 128, pi as the portable module
    // wasmtime serve runs too.
    let fresh_manifest = write_manifest(
        ctx,
        "spin-side-by-side.toml",
        &side_by_side_manifest(ctx, None)?,
    )?;
    let reuse_manifest = write_manifest(
        ctx,
        "spin-reuse128.toml",
        &side_by_side_manifest(ctx, Some(128))?,
    )?;
    let cache = ctx.work.join("cache-serve");
    for (name, manifest, shown) in [
        (
            "fnhost fresh",
            fresh_manifest,
            fnhost_shown("spin-side-by-side.toml", "")
                + "   # spin.toml, pi from the portable build",
        ),
        (
            "fnhost reuse128",
            reuse_manifest,
            fnhost_shown("spin-reuse128.toml", "")
                + "   # spin-side-by-side.toml + instance_reuse = 128 for pi and iris",
        ),
    ] {
        let host = Fnhost::start(ctx, &name.replace(' ', "-"), &manifest, &cache, &[])?;
        for (route, path, _) in ROUTES {
            measure(name, &host.addr, route, path, &mut runs)?;
        }
        servers.push(ServerCommand {
            name: name.to_string(),
            command: shown,
        });
    }
    // wasmtime serve, one process per component.
    if ctx.wasmtime.is_some() {
        for (name, reuse1) in [
            ("wasmtime serve fresh", true),
            ("wasmtime serve default", false),
        ] {
            for (route, path, wasm) in ROUTES {
                let label = format!("{}-{wasm}", name.replace(' ', "-"));
                let (server, addr) = start_wasmtime(ctx, &label, wasm, reuse1, &[], path)?;
                measure(name, &addr, route, path, &mut runs)?;
                drop(server);
                servers.push(ServerCommand {
                    name: format!("{name} ({route})"),
                    command: wasmtime_shown(wasm, reuse1, &[]),
                });
            }
        }
    }
    // The native control.
    let (server, addr) = start_native(ctx, "native-control")?;
    for (route, path, _) in ROUTES {
        measure("native", &addr, route, path, &mut runs)?;
    }
    drop(server);
    servers.push(ServerCommand {
        name: "native".into(),
        command: NATIVE_SHOWN.into(),
    });

    Ok(Serving {
        seconds_per_run: secs,
        conns,
        warm_up: !ctx.quick,
        fnhost_max_concurrent_requests: 4 * std::thread::available_parallelism()
            .map_or(2, |n| n.get()),
        servers,
        wrk: wrk::shown("/ROUTE", 0, secs),
        runs,
    })
}
