//! Section 2d, latency at half load: each short route's p50 and p99 under a fixed request rate
//! (oha `-q`, an open loop: a slow answer does not slow the arrivals, as wrk's closed loop
//! does), at half of the rate the same server reaches under wrk, with a fresh instance per
//! request and with instance reuse. At the same rate and with the same oha, the native control
//! answers the same route: its p99 is the floor that the machine and the load generator put
//! under every p99 here, so the goal (p99 ≤ 1 ms) is read against it.

use std::fmt::Write as _;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::access_log::{HandlerLatency, Mark};
use super::log_cost::ROUTES;
use super::oha::{self, OhaResult};
use super::render::verdict;
use super::servers::{
    check_route, checked_wrk, fnhost_shown, start_native, warm_up_pi, Fnhost, NATIVE_SHOWN, PI_PATH,
};
use super::stats::fmt_ms;
use super::timeout_cost::modes;
use super::Ctx;

/// The target: p99 at half of fnhost's maximum rate.
pub const TARGET_P99_MS: f64 = 1.0;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Latency {
    pub conns: u32,
    pub seconds_per_run: u32,
    pub rows: Vec<LatencyRow>,
    /// Why nothing was measured (`--quick`: oha is a `cargo install`).
    pub skipped: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LatencyRow {
    /// `fresh` or `reuse128`.
    pub mode: String,
    pub route: String,
    /// fnhost's requests/s under wrk at the same connections: the maximum the rate halves.
    pub max_rps: f64,
    pub rate: f64,
    pub fnhost: OhaResult,
    /// The same run by fnhost's access log: handler start → response head (none in results
    /// from before it was kept).
    #[serde(default)]
    pub handler: Option<HandlerLatency>,
    /// The native control at the same rate.
    pub floor: OhaResult,
}

impl LatencyRow {
    fn met(&self) -> bool {
        self.fnhost.p99_ms <= TARGET_P99_MS
    }
}

pub fn run(ctx: &Ctx) -> Result<Latency> {
    let (conns, secs) = (16u32, 10u32);
    if ctx.quick {
        return Ok(Latency {
            conns,
            seconds_per_run: secs,
            rows: Vec::new(),
            skipped: Some("full runs only (oha is a `cargo install`)".into()),
        });
    }
    let oha = oha::ensure()?;
    let (_native, native) = start_native(ctx, "native-latency")?;
    let cache = ctx.work.join("cache-latency");
    let mut rows = Vec::new();
    for (mode, manifest) in modes(ctx, "latency")? {
        let host = Fnhost::start(
            ctx,
            &format!("fnhost-{mode}-latency"),
            &manifest,
            &cache,
            &[],
        )?;
        for (route, path) in ROUTES {
            if path == PI_PATH {
                warm_up_pi(ctx, &host.addr, "/api/v0/pi")?;
            }
            let max = checked_wrk(
                ctx,
                &format!("fnhost {mode} {route}"),
                &host.addr,
                path,
                conns,
                secs,
            )?;
            let rate = (max.rps / 2.0).floor().max(1.0);
            let fixed = |what: &str, addr: &str| -> Result<OhaResult> {
                let url = format!("http://{addr}{path}");
                oha::run(
                    &format!("{what} {route}"),
                    &oha,
                    &url,
                    None,
                    rate,
                    conns,
                    secs,
                )
            };
            // Each server's answer is checked before its run; fnhost's check before the mark,
            // so that its access line is not counted as one of the run's.
            check_route(ctx, &host.addr, path)?;
            let mark = Mark::now(&host.server);
            let fnhost = fixed(&format!("fnhost {mode}"), &host.addr)?;
            let handler = mark.handler_latency(&host.server, fnhost.responses)?;
            check_route(ctx, &native, path)?;
            let floor = fixed("native control", &native)?;
            println!(
                "bench: {route} {mode} at {rate:.0} req/s: fnhost p99 {:.2} ms (in its handler {:.2} ms), native control p99 {:.2} ms",
                fnhost.p99_ms, handler.p99_ms, floor.p99_ms
            );
            rows.push(LatencyRow {
                mode: mode.to_string(),
                route: route.to_string(),
                max_rps: max.rps,
                rate,
                fnhost,
                handler: Some(handler),
                floor,
            });
        }
    }
    Ok(Latency {
        conns,
        seconds_per_run: secs,
        rows,
        skipped: None,
    })
}

/// The targets line's item.
pub fn targets(l: &Latency) -> String {
    let goal = format!("p99 ≤ {TARGET_P99_MS} ms at half load");
    if l.rows.is_empty() {
        return format!("{goal}: not measured (--quick)");
    }
    format!(
        "{goal}: {} — {}",
        verdict(l.rows.iter().all(LatencyRow::met)),
        p99_list(l)
    )
}

/// The headline line and the section's text.
pub fn render(l: &Latency) -> Result<(String, String)> {
    let (secs, conns) = (l.seconds_per_run, l.conns);
    let mut md = String::new();
    writeln!(md, "## 2d. Latency at half load\n")?;
    writeln!(
        md,
        "Target: p99 ≤ {TARGET_P99_MS} ms at half of fnhost's maximum rate. For each route and \
        mode, wrk ({conns} connections, {secs} s, after a 1-second warm-up) finds fnhost's \
        maximum; oha then sends half that rate for {secs} s over {conns} connections (`-q`: \
        a fixed rate, an open loop), first to fnhost, then to the native control at the same \
        rate. The native control does microseconds of work per request, so its latency is the \
        floor that the machine (2 shared cores) and the load generator, which runs on the same \
        cores, put under every number here. *In the handler*: the same run by fnhost's own \
        access log (`ms`: handler start → response head), so what a tail owes to the handler \
        and what to the socket, the wait for a core and the load generator can be told apart. \
        *fresh* and *reuse128* as in section 2b.\n"
    )?;
    writeln!(md, "```sh")?;
    writeln!(md, "{}", fnhost_shown("spin-side-by-side.toml", ""))?;
    writeln!(md, "{NATIVE_SHOWN}")?;
    writeln!(
        md,
        "wrk -t2 -c{conns} -d{secs}s --timeout 30s --latency 'http://$ADDR/PATH'   # the maximum"
    )?;
    writeln!(
        md,
        "oha --no-tui --output-format json -z {secs}s -q RATE -c {conns} 'http://$ADDR/PATH'"
    )?;
    writeln!(md, "```\n")?;
    if let Some(why) = &l.skipped {
        writeln!(md, "Not measured in this run: {why}.")?;
        return Ok((format!("Latency at half load: not measured: {why}."), md));
    }
    writeln!(
        md,
        "| route | mode | max (wrk) | fixed rate | fnhost p50 | fnhost p99 | in the handler: p50 / p99 | native p50 | native p99 |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for r in &l.rows {
        writeln!(
            md,
            "| {} | {} | {:.0} req/s | {:.0} req/s | {} | {} | {} | {} | {} |",
            r.route,
            r.mode,
            r.max_rps,
            r.rate,
            fmt_ms(r.fnhost.p50_ms),
            fmt_ms(r.fnhost.p99_ms),
            handler_cell(r.handler.as_ref()),
            fmt_ms(r.floor.p50_ms),
            fmt_ms(r.floor.p99_ms)
        )?;
    }
    let headline = format!(
        "Latency at half load (p99, native control at the same rate as the floor): {}.",
        p99_list(l)
    );
    Ok((headline, md))
}

/// `410 µs / 1.20 ms`, or a dash for results from before the handler's times were kept.
pub fn handler_cell(h: Option<&HandlerLatency>) -> String {
    h.map_or("—".into(), |h| {
        format!("{} / {}", fmt_ms(h.p50_ms), fmt_ms(h.p99_ms))
    })
}

/// `iris GET fresh 2.82 ms (in the handler 1.20 ms, floor 1.14 ms), …`: each row's p99 beside
/// its handler's and the native control's.
fn p99_list(l: &Latency) -> String {
    l.rows
        .iter()
        .map(|r| {
            let handler = r.handler.as_ref().map_or(String::new(), |h| {
                format!("in the handler {}, ", fmt_ms(h.p99_ms))
            });
            format!(
                "{} {} {} ({handler}floor {})",
                r.route,
                r.mode,
                fmt_ms(r.fnhost.p99_ms),
                fmt_ms(r.floor.p99_ms)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
