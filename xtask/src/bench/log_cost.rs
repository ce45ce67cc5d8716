//! Section 2c, what the access log costs: the same manifest served by two fnhost processes
//! side by side, one with its defaults (one log line per request) and one with
//! `FNHOST_LOG=warn` (no info events: at steady state the access line is the only one),
//! measured alternately (req/s and server CPU time per request), with a fresh instance per
//! request and with instance reuse. Both processes are started anew for every round, and the
//! order alternates, so that neither a process's own placement nor going first decides a 1%
//! difference.

use std::fmt::Write as _;

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use super::render::verdict;
use super::servers::{fnhost_shown, IRIS_PATH, PI_PATH};
use super::stats::{median, runs};
use super::timeout_cost::{fnhost_round, modes, start_pair, OnOffRow};
use super::{wrk, Ctx};

/// Routes measured: the short requests, where a log line weighs most.
pub const ROUTES: [(&str, &str); 2] = [("iris GET", IRIS_PATH), ("pi ndigits=100", PI_PATH)];

/// The environment of the side without the access log.
pub const LOG_OFF: (&str, &str) = ("FNHOST_LOG", "warn");

/// The target: the access log costs at most 1% of requests/s (on / off ≥ 0.99).
pub const TARGET_ON_OVER_OFF: f64 = 0.99;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogCost {
    pub conns: u32,
    pub seconds_per_run: u32,
    /// Runs of each side.
    pub runs_each: usize,
    pub rows: Vec<OnOffRow>,
}

impl LogCost {
    /// Whether a row meets the target.
    pub fn met(row: &OnOffRow) -> bool {
        row.on_over_off() >= TARGET_ON_OVER_OFF
    }
}

pub fn run(ctx: &Ctx) -> Result<LogCost> {
    let (secs, rounds) = if ctx.quick { (1u32, 2usize) } else { (5, 8) };
    let conns = 16;
    let cache = ctx.work.join("cache-log");
    let mut rows = Vec::new();
    for (mode, manifest) in modes(ctx, "log")? {
        let mut mode_rows: Vec<OnOffRow> = Vec::new();
        for round in 0..rounds {
            // New processes every round: two identical fnhost processes measured against each
            // other repeatedly differed by up to 5% in req/s (each keeps its own memory
            // placement), more than the 1% to be resolved; restarted, they were level within
            // about 1% (bench/analysis.md).
            let [on, off] = start_pair(
                ctx,
                &format!("fnhost-{mode}-log"),
                &manifest,
                &cache,
                &[],
                &[LOG_OFF],
            )?;
            fnhost_round(
                ctx,
                (mode, round),
                [&on, &off],
                &ROUTES,
                (conns, secs),
                &mut mode_rows,
            )?;
            // What is compared: the access log written on one side only (flushed within 50 ms).
            std::thread::sleep(std::time::Duration::from_millis(200));
            ensure!(
                on.server.log_text().contains("request_id"),
                "fnhost with its defaults wrote no access log line ({})",
                on.server.log_path().display()
            );
            ensure!(
                !off.server.log_text().contains("request_id"),
                "fnhost with {}={} wrote access log lines ({})",
                LOG_OFF.0,
                LOG_OFF.1,
                off.server.log_path().display()
            );
        }
        rows.extend(mode_rows);
    }
    Ok(LogCost {
        conns,
        seconds_per_run: secs,
        runs_each: rounds,
        rows,
    })
}

/// The targets line's item.
pub fn targets(l: &LogCost, quick: bool) -> String {
    let list = l
        .rows
        .iter()
        .map(|r| format!("{} {} {:.3}", r.route, r.mode, r.on_over_off()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "access log costs ≤ 1% of req/s: {}{} — on/off {list}",
        verdict(l.rows.iter().all(LogCost::met)),
        if quick {
            " (1-second runs, indicative only)"
        } else {
            ""
        }
    )
}

/// The headline line and the section's text.
pub fn render(l: &LogCost) -> Result<(String, String)> {
    let (secs, conns, pairs) = (l.seconds_per_run, l.conns, l.runs_each);
    let mut md = String::new();
    writeln!(md, "## 2c. Cost of the access log\n")?;
    writeln!(
        md,
        "Target: the access log (one line per request, on by default) costs at most 1% of \
        requests/s (on / off ≥ {TARGET_ON_OVER_OFF}). Two fnhost processes serve the same \
        manifest side by side, one with its defaults and one with `{}={}` (no info events; at \
        steady state the access line is the only one). In each of {pairs} rounds both are \
        started anew and wrk runs {secs} s at {conns} connections against each once (after an \
        unrecorded 1-second warm-up of each unless `--quick`), the one with the log first in \
        even rounds and the other first in odd ones: two identical processes measured against \
        each other without restarts differed by up to 5%, restarted by about 1% (bench/analysis.md). \
        Both write their log to a file. *fresh* and \
        *reuse128* as in section 2b. *CPU per request*: the server process's user + system time \
        during a run over the requests it answered, median of the runs.\n",
        LOG_OFF.0, LOG_OFF.1
    )?;
    writeln!(md, "```sh")?;
    writeln!(
        md,
        "{} 2>log-on",
        fnhost_shown("spin-side-by-side.toml", "")
    )?;
    writeln!(
        md,
        "{}={} {} 2>log-off",
        LOG_OFF.0,
        LOG_OFF.1,
        fnhost_shown("spin-side-by-side.toml", "")
    )?;
    writeln!(
        md,
        "# and both again with spin-reuse128.toml (spin-side-by-side.toml + instance_reuse = 128)"
    )?;
    writeln!(
        md,
        "{}   # /ROUTE = {IRIS_PATH} or {PI_PATH}",
        wrk::shown("/ROUTE", conns, secs)
    )?;
    writeln!(md, "```\n")?;
    writeln!(md, "| instances | route | log on: median req/s (runs) | log off: median req/s (runs) | on / off | CPU µs per request, on / off (added) | ≤ 1%? |")?;
    writeln!(md, "|---|---|---:|---:|---:|---:|---|")?;
    let mut line = format!("Access log cost ({conns} connections, median req/s, on / off; target ≥ {TARGET_ON_OVER_OFF}):");
    for r in &l.rows {
        let (cpu_on, cpu_off) = r.cpu_us();
        writeln!(
            md,
            "| {} | {} | {:.0} ({}) | {:.0} ({}) | {:.3} | {cpu_on:.0} / {cpu_off:.0} ({:+.0} µs) | {} |",
            r.mode,
            r.route,
            median(&r.on_req_per_s),
            runs(&r.on_req_per_s),
            median(&r.off_req_per_s),
            runs(&r.off_req_per_s),
            r.on_over_off(),
            cpu_on - cpu_off,
            if LogCost::met(r) { "✓ met" } else { "✗ missed" }
        )?;
        write!(
            line,
            " {} {}: {:.3}{};",
            r.mode,
            r.route,
            r.on_over_off(),
            if LogCost::met(r) { " met" } else { " MISSED" }
        )?;
    }
    writeln!(md)?;
    line.pop();
    Ok((line + ".", md))
}
