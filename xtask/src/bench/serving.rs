//! Section 2, serving: wrk against iris GET and pi `ndigits=100` on fnhost (a fresh instance
//! per request, and `instance_reuse = 128`), `wasmtime serve` (fresh and at its default) and
//! the native control; every server's answer checked before and after each run. In rounds:
//! every server is started anew for each, the order alternates, and a cell is the median.

use anyhow::Result;
use serde::{Deserialize, Serialize};

use devkit::process::Server;

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
    /// Rounds: every server started anew and measured once per cell in each (1 before
    /// 2026-12-01, when one process per server was measured once).
    #[serde(default = "one")]
    pub rounds: usize,
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
    /// req/s of every round, in order (empty in results from before rounds).
    #[serde(default)]
    pub rounds_req_per_s: Vec<f64>,
    /// The round with the median req/s (an odd number of rounds; the higher middle one of
    /// an even number).
    #[serde(flatten)]
    pub wrk: WrkResult,
}

fn one() -> usize {
    1
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

/// One server of one round: where it listens and the routes it is measured on.
struct Running {
    name: &'static str,
    addr: String,
    /// (route name, path)
    routes: Vec<(&'static str, &'static str)>,
    _server: Server,
}

pub fn run(ctx: &Ctx) -> Result<Serving> {
    let conns: Vec<u32> = if ctx.quick { vec![16] } else { vec![1, 16, 64] };
    let (secs, rounds) = if ctx.quick { (2, 1) } else { (5, 3) };

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
    let both_routes: Vec<_> = ROUTES
        .iter()
        .map(|&(route, path, _)| (route, path))
        .collect();
    let wasmtime_modes: &[(&'static str, bool)] = if ctx.wasmtime.is_some() {
        &[
            ("wasmtime serve fresh", true),
            ("wasmtime serve default", false),
        ]
    } else {
        &[]
    };

    let mut servers = vec![
        ServerCommand {
            name: "fnhost fresh".into(),
            command: fnhost_shown("spin-side-by-side.toml", "")
                + "   # spin.toml, pi from the portable build",
        },
        ServerCommand {
            name: "fnhost reuse128".into(),
            command: fnhost_shown("spin-reuse128.toml", "")
                + "   # spin-side-by-side.toml + instance_reuse = 128 for pi and iris",
        },
    ];
    for &(name, reuse1) in wasmtime_modes {
        for (route, _, wasm) in ROUTES {
            servers.push(ServerCommand {
                name: format!("{name} ({route})"),
                command: wasmtime_shown(wasm, reuse1, &[]),
            });
        }
    }
    servers.push(ServerCommand {
        name: "native".into(),
        command: NATIVE_SHOWN.into(),
    });

    // Every server is started anew in every round and the order of the servers alternates:
    // one process measured once can be a few percent off its twin (its memory placement), and
    // whichever runs later meets a machine the earlier ones have warmed (bench/analysis.md).
    let mut measured: Vec<(String, String, u32, Vec<WrkResult>)> = Vec::new();
    for round in 0..rounds {
        let mut running = Vec::new();
        for (name, manifest) in [
            ("fnhost fresh", &fresh_manifest),
            ("fnhost reuse128", &reuse_manifest),
        ] {
            let Fnhost { server, addr, .. } =
                Fnhost::start(ctx, &name.replace(' ', "-"), manifest, &cache, &[])?;
            running.push(Running {
                name,
                addr,
                routes: both_routes.clone(),
                _server: server,
            });
        }
        // wasmtime serve, one process per component.
        for &(name, reuse1) in wasmtime_modes {
            for (route, path, wasm) in ROUTES {
                let label = format!("{}-{wasm}", name.replace(' ', "-"));
                let (server, addr) = start_wasmtime(ctx, &label, wasm, reuse1, &[], path)?;
                running.push(Running {
                    name,
                    addr,
                    routes: vec![(route, path)],
                    _server: server,
                });
            }
        }
        let (server, addr) = start_native(ctx, "native-control")?;
        running.push(Running {
            name: "native",
            addr,
            routes: both_routes.clone(),
            _server: server,
        });
        if round % 2 == 1 {
            running.reverse();
        }
        for r in &running {
            for &(route, path) in &r.routes {
                for &c in &conns {
                    let w =
                        checked_wrk(ctx, &format!("{} {route}", r.name), &r.addr, path, c, secs)?;
                    match measured
                        .iter_mut()
                        .find(|(ro, s, n, _)| ro == route && s == r.name && *n == c)
                    {
                        Some((_, _, _, runs)) => runs.push(w),
                        None => measured.push((route.into(), r.name.into(), c, vec![w])),
                    }
                }
            }
        }
        // Dropping the servers stops them (by PID) before the next round starts its own.
    }
    let runs = measured
        .into_iter()
        .map(|(route, server, conns, runs)| {
            let (rounds_req_per_s, wrk) = wrk::median_round(runs);
            ServeRun {
                route,
                server,
                conns,
                rounds_req_per_s,
                wrk,
            }
        })
        .collect();

    Ok(Serving {
        seconds_per_run: secs,
        rounds,
        conns,
        warm_up: !ctx.quick,
        fnhost_max_concurrent_requests: 4 * std::thread::available_parallelism()
            .map_or(2, |n| n.get()),
        servers,
        wrk: wrk::shown("/ROUTE", 0, secs),
        runs,
    })
}
