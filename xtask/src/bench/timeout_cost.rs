//! Section 2b, what the CPU-time timeouts (epoch interruption) cost: the same manifest served
//! by two fnhost processes side by side, one with its defaults and one with
//! `--no-cpu-timeouts`, measured alternately (req/s and server CPU time per request) in rounds
//! that start both anew; and the same for `wasmtime serve -W timeout` against no timeout.

use std::path::{Path, PathBuf};

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use super::servers::{
    check_route, side_by_side_manifest, start_wasmtime, write_manifest, Fnhost, IRIS_PATH,
    PI_10K_PATH, PI_PATH,
};
use super::stats::median;
use super::wrk;
use super::Ctx;

/// Routes measured: name, path, component for `wasmtime serve`.
pub const ROUTES: [(&str, &str, &str); 3] = [
    ("iris GET", IRIS_PATH, "iris"),
    ("pi ndigits=100", PI_PATH, "pi_chudnovsky"),
    ("pi ndigits=10000", PI_10K_PATH, "pi_chudnovsky"),
];

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TimeoutCost {
    pub conns: u32,
    pub seconds_per_run: u32,
    /// Runs of each side: one per round, both processes started anew for each (before
    /// 2026-12-01, runs of one pair of processes).
    pub runs_each: usize,
    /// Whether each side had an unrecorded 1-second warm-up.
    pub warm_up: bool,
    pub rows: Vec<OnOffRow>,
}

/// One server, instance mode and route: the runs with a feature (the timeouts, the access
/// log) on and off, in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OnOffRow {
    pub server: String,
    pub mode: String,
    pub route: String,
    #[serde(alias = "timeouts_on_req_per_s")]
    pub on_req_per_s: Vec<f64>,
    #[serde(alias = "timeouts_off_req_per_s")]
    pub off_req_per_s: Vec<f64>,
    #[serde(alias = "timeouts_on_cpu_us_per_request")]
    pub on_cpu_us_per_request: Vec<f64>,
    #[serde(alias = "timeouts_off_cpu_us_per_request")]
    pub off_cpu_us_per_request: Vec<f64>,
}

impl OnOffRow {
    /// Median req/s with the feature on over off.
    pub fn on_over_off(&self) -> f64 {
        median(&self.on_req_per_s) / median(&self.off_req_per_s)
    }

    /// The timeouts' target: on / off ≥ 0.95.
    pub fn within_5_percent(&self) -> bool {
        self.on_over_off() >= 0.95
    }

    /// The same runs with the sides' roles exchanged (for a run that measured off first).
    pub fn swapped(self) -> OnOffRow {
        OnOffRow {
            on_req_per_s: self.off_req_per_s,
            off_req_per_s: self.on_req_per_s,
            on_cpu_us_per_request: self.off_cpu_us_per_request,
            off_cpu_us_per_request: self.on_cpu_us_per_request,
            ..self
        }
    }

    /// Adds `other`'s runs (the same server, mode and route) to these.
    pub fn extend(&mut self, other: OnOffRow) {
        self.on_req_per_s.extend(other.on_req_per_s);
        self.off_req_per_s.extend(other.off_req_per_s);
        self.on_cpu_us_per_request
            .extend(other.on_cpu_us_per_request);
        self.off_cpu_us_per_request
            .extend(other.off_cpu_us_per_request);
    }

    /// Median server CPU µs per request, on and off.
    pub fn cpu_us(&self) -> (f64, f64) {
        (
            median(&self.on_cpu_us_per_request),
            median(&self.off_cpu_us_per_request),
        )
    }
}

/// A server under test: its PID (for CPU time) and address.
pub struct Side<'a> {
    pub pid: u32,
    pub addr: &'a str,
}

impl<'a> Side<'a> {
    pub fn of(host: &'a Fnhost) -> Side<'a> {
        Side {
            pid: host.server.pid(),
            addr: &host.addr,
        }
    }
}

/// wrk against the `on` and `off` servers alternately, `pairs` times, recording req/s and the
/// server's CPU time per request (from /proc, around each run).
#[allow(clippy::too_many_arguments)]
pub fn measure_on_off(
    ctx: &Ctx,
    (server, mode, route): (&str, &str, &str),
    sides: [Side; 2],
    path: &str,
    conns: u32,
    secs: u32,
    pairs: usize,
    warm_up: bool,
) -> Result<OnOffRow> {
    let mut rps: [Vec<f64>; 2] = Default::default();
    let mut cpu_us: [Vec<f64>; 2] = Default::default();
    for side in &sides {
        check_route(ctx, side.addr, path)?;
        if warm_up {
            wrk::run(&format!("http://{}{path}", side.addr), conns, 1)?;
        }
    }
    for _ in 0..pairs {
        for (i, side) in sides.iter().enumerate() {
            let cpu_before = devkit::process::cpu_time(side.pid)?;
            let w = wrk::run(&format!("http://{}{path}", side.addr), conns, secs)?;
            let cpu = devkit::process::cpu_time(side.pid)? - cpu_before;
            ensure!(
                w.clean(),
                "on/off {server} {mode} {route}: {} non-2xx, {} socket errors, {} requests",
                w.non2xx,
                w.socket_errors,
                w.requests
            );
            rps[i].push(w.rps);
            cpu_us[i].push(cpu.as_micros() as f64 / w.requests as f64);
        }
    }
    for side in &sides {
        check_route(ctx, side.addr, path)?;
    }
    let [on_rps, off_rps] = rps;
    let [on_cpu, off_cpu] = cpu_us;
    Ok(OnOffRow {
        server: server.to_string(),
        mode: mode.to_string(),
        route: route.to_string(),
        on_req_per_s: on_rps,
        off_req_per_s: off_rps,
        on_cpu_us_per_request: on_cpu,
        off_cpu_us_per_request: off_cpu,
    })
}

/// The instance modes the on/off sections measure, each with its manifest (named with `tag`):
/// *fresh*, `spin-side-by-side.toml`; *reuse128*, the same with `instance_reuse = 128`.
pub fn modes(ctx: &Ctx, tag: &str) -> Result<[(&'static str, PathBuf); 2]> {
    Ok([
        (
            "fresh",
            write_manifest(
                ctx,
                &format!("spin-side-by-side-{tag}.toml"),
                &side_by_side_manifest(ctx, None)?,
            )?,
        ),
        (
            "reuse128",
            write_manifest(
                ctx,
                &format!("spin-reuse128-{tag}.toml"),
                &side_by_side_manifest(ctx, Some(128))?,
            )?,
        ),
    ])
}

/// The two servers of an on/off measurement, side by side on one manifest (only the one under
/// load does work): `on` with fnhost's defaults, `off` with `off_args` and `off_env`.
pub fn start_pair(
    ctx: &Ctx,
    name: &str,
    manifest: &Path,
    cache: &Path,
    off_args: &[&str],
    off_env: &[(&str, &str)],
) -> Result<[Fnhost; 2]> {
    let on = Fnhost::start(ctx, &format!("{name}-on"), manifest, cache, &[])?;
    let off = Fnhost::spawn_with_env(
        ctx,
        &format!("{name}-off"),
        manifest,
        cache,
        off_args,
        off_env,
    )?
    .ready()?;
    Ok([on, off])
}

/// One round's measurement of an on/off pair, in this round's turn order: on first in even
/// rounds, off first in odd ones (whichever side runs second meets a machine the first has
/// just warmed). The row has the sides in their roles either way.
pub fn in_turn<'a>(
    round: usize,
    on: Side<'a>,
    off: Side<'a>,
    measure: impl FnOnce([Side<'a>; 2]) -> Result<OnOffRow>,
) -> Result<OnOffRow> {
    if round.is_multiple_of(2) {
        measure([on, off])
    } else {
        Ok(measure([off, on])?.swapped())
    }
}

/// One round of two fnhost processes, `on` against `off`, once on each of `routes` (name,
/// path) in the round's turn order; the runs are added to `rows`, one row per route.
pub fn fnhost_round(
    ctx: &Ctx,
    (mode, round): (&str, usize),
    [on, off]: [&Fnhost; 2],
    routes: &[(&str, &str)],
    (conns, secs): (u32, u32),
    rows: &mut Vec<OnOffRow>,
) -> Result<()> {
    for (i, &(route, path)) in routes.iter().enumerate() {
        let row = in_turn(round, Side::of(on), Side::of(off), |sides| {
            measure_on_off(
                ctx,
                ("fnhost", mode, route),
                sides,
                path,
                conns,
                secs,
                1,
                !ctx.quick,
            )
        })?;
        add_round(rows, i, row);
    }
    Ok(())
}

/// Adds a round's `row` to `rows[i]` (or starts it, in the first round).
pub fn add_round(rows: &mut Vec<OnOffRow>, i: usize, row: OnOffRow) {
    match rows.get_mut(i) {
        Some(r) => r.extend(row),
        None => rows.push(row),
    }
}

pub fn run(ctx: &Ctx) -> Result<TimeoutCost> {
    let (secs, rounds) = if ctx.quick { (1u32, 2usize) } else { (5, 4) };
    let conns = 16;
    let cache = ctx.work.join("cache-timeouts");
    let mut rows = Vec::new();
    // Both processes are started anew every round: one pair of processes measured against each
    // other can differ by a few percent for reasons of its own (bench/analysis.md, section 2c).
    for (mode, manifest) in modes(ctx, "timeouts")? {
        let mut mode_rows = Vec::new();
        for round in 0..rounds {
            let [on, off] = start_pair(
                ctx,
                &format!("fnhost-{mode}-timeouts"),
                &manifest,
                &cache,
                &["--no-cpu-timeouts"],
                &[],
            )?;
            let routes = ROUTES.map(|(route, path, _)| (route, path));
            fnhost_round(
                ctx,
                (mode, round),
                [&on, &off],
                &routes,
                (conns, secs),
                &mut mode_rows,
            )?;
        }
        rows.extend(mode_rows);
    }
    // The same comparison for wasmtime serve, whose `-W timeout` is also epoch interruption:
    // how much of the cost is the mechanism rather than fnhost's use of it.
    if ctx.wasmtime.is_some() {
        for (route, path, wasm) in ROUTES {
            let mut route_rows = Vec::new();
            for round in 0..rounds {
                let (on, on_addr) = start_wasmtime(
                    ctx,
                    &format!("wasmtime-timeouts-on-{wasm}"),
                    wasm,
                    true,
                    &["-W", "timeout=30s"],
                    path,
                )?;
                let (off, off_addr) = start_wasmtime(
                    ctx,
                    &format!("wasmtime-timeouts-off-{wasm}"),
                    wasm,
                    true,
                    &[],
                    path,
                )?;
                let on = Side {
                    pid: on.pid(),
                    addr: &on_addr,
                };
                let off = Side {
                    pid: off.pid(),
                    addr: &off_addr,
                };
                let row = in_turn(round, on, off, |sides| {
                    measure_on_off(
                        ctx,
                        ("wasmtime serve", "fresh", route),
                        sides,
                        path,
                        conns,
                        secs,
                        1,
                        true,
                    )
                })?;
                add_round(&mut route_rows, 0, row);
            }
            rows.extend(route_rows);
        }
    }
    Ok(TimeoutCost {
        conns,
        seconds_per_run: secs,
        runs_each: rounds,
        warm_up: !ctx.quick,
        rows,
    })
}
