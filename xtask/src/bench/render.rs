//! `BENCHMARKS.md` (and its two plots) rendered from [`Results`], and both written out: the
//! header and machine table, the headline block (targets first, then one line per section),
//! the load table, one section per measurement with its commands, and the hand-kept notes
//! included verbatim at the end.

use std::fmt::Write as _;

use anyhow::{Context, Result};

use super::live_update::LiveUpdate;
use super::per_instance::{PerInstance, MEMORY_HOST_ENV};
use super::pi_compute::{Algo, PiCompute, PI_V1_ROUTE};
use super::plot;
use super::python::{PythonPi, DIGITS as PYTHON_DIGITS, SERVERS as PYTHON_SERVERS};
use super::results::Results;
use super::servers::{
    fnhost_shown, wasmtime_shown, IRIS_PATH, NATIVE_SHOWN, PI_10K_PATH, PI_PATH, PORTABLE_PI,
};
use super::serving::{Serving, SERVERS};
use super::startup::Startup;
use super::stats::{fmt_ms, fmt_s, max, median, min, runs};
use super::timeout_cost::TimeoutCost;
use super::wrk;
use super::Ctx;
use crate::fleet::FleetReport;

/// How the targets line says whether a target was met.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

/// Hand-kept notes that explain the numbers; included verbatim, not measured by a run.
const INCLUDED: [(&str, &str); 2] = [
    (
        "Where the time goes (profiling notes, kept by hand)",
        "bench/analysis.md",
    ),
    (
        "How pi v2's arithmetic was chosen (separate measurement)",
        "functions/pi/MEASUREMENTS.md",
    ),
];

/// Computes the targets, then writes results.json, BENCHMARKS.md and the plots.
pub fn save(ctx: &Ctx, results: &mut Results) -> Result<()> {
    results.targets = targets(results);
    let md = markdown(ctx, results)?;
    for p in [&ctx.md_path, &ctx.json_path] {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
    }
    std::fs::write(&ctx.md_path, md)?;
    std::fs::write(
        &ctx.json_path,
        serde_json::to_string_pretty(results)? + "\n",
    )?;
    Ok(())
}

fn markdown(ctx: &Ctx, r: &Results) -> Result<String> {
    let mut md = header(r)?;
    // Each section renders to its headline line and its text.
    let rendered: Vec<(String, String)> = [
        r.pi.as_ref().map(|p| pi(ctx, p)),
        r.serving.as_ref().map(|s| serving(ctx, r.quick, s)),
        r.timeout_cost.as_ref().map(timeout_cost),
        r.log_cost.as_ref().map(super::log_cost::render),
        r.latency.as_ref().map(super::latency::render),
        r.startup.as_ref().map(startup),
        r.live_update.as_ref().map(live_update),
        r.per_instance.as_ref().map(per_instance),
        r.python.as_ref().map(python_pi),
        r.models.as_ref().map(super::models::render),
        r.fleet.as_ref().map(fleet),
    ]
    .into_iter()
    .flatten()
    .collect::<Result<_>>()?;
    let (mut headlines, sections): (Vec<String>, Vec<String>) = rendered.into_iter().unzip();
    if !headlines.is_empty() {
        headlines.insert(
            0,
            format!("**Targets** (from this run): {}.", r.targets.join("; ")),
        );
        md.push_str("## Headline numbers (from the tables below)\n\n");
        for line in &headlines {
            writeln!(md, "- {line}")?;
        }
        md.push('\n');
    }
    if !r.load_average.is_empty() {
        md.push_str(
            "Machine load (`/proc/loadavg`: 1, 5, 15 min) around each section; a load \
             well above 0 before a section means other processes were using the cores, and \
             that section's absolute numbers are pessimistic:\n\n\
             | section | load before | load after | duration |\n|---|---|---|---:|\n",
        );
        for l in &r.load_average {
            writeln!(
                md,
                "| {} | {} | {} | {:.0} s |",
                l.section.title(),
                l.before,
                l.after,
                l.seconds
            )?;
        }
        md.push('\n');
    }
    for s in &sections {
        md.push_str(s);
        md.push('\n');
    }
    for (title, rel) in INCLUDED {
        let text = std::fs::read_to_string(ctx.root.join(rel))
            .with_context(|| format!("reading {rel}"))?;
        let body = text
            .lines()
            .skip_while(|l| l.starts_with("# "))
            .collect::<Vec<_>>()
            .join("\n");
        write!(md, "## {title}\n\nFrom [`{rel}`]({rel}), included as written; not re-measured by this run.\n\n{body}\n\n")?;
    }
    Ok(md)
}

fn header(r: &Results) -> Result<String> {
    let m = &r.machine;
    let json = if r.quick {
        "results.json"
    } else {
        "bench/results.json"
    };
    let mut h = String::new();
    writeln!(h, "# fnhost benchmarks\n")?;
    let earlier = r.measured_earlier();
    let provenance = if earlier.is_empty() {
        "Every number below comes from that run.".to_string()
    } else {
        let list: Vec<String> = earlier
            .iter()
            .map(|l| format!("{} ({})", l.section.title(), l.run))
            .collect();
        format!(
            "The sections it names come from that run; these keep the numbers of an earlier run: {}.",
            list.join(", ")
        )
    };
    writeln!(
        h,
        "Generated by `{}` on {}; raw numbers in [`{json}`]({json}). {provenance}\n",
        r.command, r.generated
    )?;
    writeln!(h, "## Machine\n")?;
    writeln!(h, "| | |\n|---|---|")?;
    writeln!(h, "| CPU (`/proc/cpuinfo`) | {} |", m.cpu)?;
    writeln!(h, "| `nproc` | {} |", m.nproc)?;
    writeln!(h, "| memory | {} |", m.mem_total)?;
    writeln!(h, "| kernel | {} |", m.kernel)?;
    writeln!(h, "| date | {} |", r.generated)?;
    writeln!(h, "| rustc | {} |", m.rustc)?;
    writeln!(h, "| wrk | {} |", m.wrk)?;
    writeln!(
        h,
        "| python, mpmath, gmpy2, mpmath backend | {} |",
        m.python_mpmath_gmpy2
    )?;
    writeln!(
        h,
        "| wasmtime-cli (for `wasmtime serve`) | {} |\n",
        m.wasmtime
    )?;
    writeln!(
        h,
        "**The load generator (wrk) and the server under test share these {} cores**, and other \
         processes on the machine may have used CPU during the run: absolute numbers are \
         lower than on a dedicated server; the ratios between servers measured the same way \
         are the meaningful part. All servers listen on 127.0.0.1; fnhost is run with \
         `RUST_BACKTRACE` unset and logs to a file.\n",
        m.nproc
    )?;
    Ok(h)
}

/// The targets line's items, from what the results hold.
fn targets(r: &Results) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    let fmt_list = |v: &[(String, f64)]| {
        v.iter()
            .map(|(r, x)| format!("{r} {x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // Serving ratios at 16 connections.
    let ratio_list = |num: &str, den: &str| -> Vec<(String, f64)> {
        let Some(s) = &r.serving else {
            return Vec::new();
        };
        routes(s)
            .into_iter()
            .filter_map(|route| {
                let v = s.rps(&route, num, 16)? / s.rps(&route, den, 16)?;
                Some((route, v))
            })
            .collect()
    };
    let fw = ratio_list("fnhost fresh", "wasmtime serve fresh");
    let rw = ratio_list("fnhost reuse128", "wasmtime serve default");
    if fw.is_empty() && rw.is_empty() {
        items.push(format!(
            "fnhost ≥ 1.2× wasmtime serve: not measured ({})",
            if r.quick {
                "--quick skips wasmtime serve"
            } else {
                "wasmtime-cli not found"
            }
        ));
    } else {
        let ok = fw.iter().chain(rw.iter()).all(|(_, x)| *x >= 1.2);
        items.push(format!(
            "fnhost ≥ 1.2× wasmtime serve (16 conns): {} — fresh/fresh {}; reuse128/default {}",
            verdict(ok),
            fmt_list(&fw),
            fmt_list(&rw)
        ));
    }
    let nf = ratio_list("native", "fnhost fresh");
    let nr = ratio_list("native", "fnhost reuse128");
    if !nf.is_empty() {
        let ok = nf.iter().chain(nr.iter()).all(|(_, x)| *x <= 1.5);
        let best_ok = nr.iter().all(|(_, x)| *x <= 1.5);
        items.push(format!(
            "native/fnhost ≤ 1.5× (16 conns): {}{} — native/fnhost fresh {}; native/fnhost reuse128 {}",
            verdict(ok),
            if !ok && best_ok { " (met only with reuse128)" } else { "" },
            fmt_list(&nf),
            fmt_list(&nr)
        ));
    }
    // Pi v2.
    let v2 = |n: usize| {
        let p = r.pi.as_ref()?;
        Some((
            median(&p.wasm(Algo::Chudnovsky, n)?.seconds),
            median(&p.native(Algo::Chudnovsky, n)?.seconds),
            p.mpmath(n).map(|m| median(&m.seconds)),
        ))
    };
    match v2(1_000_000) {
        Some((w, n, Some(m))) => items.push(format!(
            "pi v2 at 10^6 digits ≤ 10 s and ≤ 2× mpmath: {} — wasm via fnhost {} = {:.2}× mpmath {} (native {} = {:.2}×)",
            verdict(w <= 10.0 && w / m <= 2.0 && n <= 10.0 && n / m <= 2.0),
            fmt_s(w),
            w / m,
            fmt_s(m),
            fmt_s(n),
            n / m
        )),
        _ => items.push("pi v2 at 10^6 digits ≤ 10 s and ≤ 2× mpmath: not measured (--quick)".into()),
    }
    match v2(100_000) {
        Some((w, n, _)) => items.push(format!(
            "pi v2 at 10^5 digits ≤ 0.5 s: {} — wasm via fnhost {}, native {}",
            verdict(w <= 0.5 && n <= 0.5),
            fmt_s(w),
            fmt_s(n)
        )),
        None => items.push("pi v2 at 10^5 digits ≤ 0.5 s: not measured (--quick)".into()),
    }
    if let Some(t) = &r.timeout_cost {
        let rows: Vec<_> = t.rows.iter().filter(|r| r.server == "fnhost").collect();
        let ok = rows.iter().all(|r| r.within_5_percent());
        let list = rows
            .iter()
            .map(|r| format!("{} {} {:.3}", r.route, r.mode, r.on_over_off()))
            .collect::<Vec<_>>()
            .join(", ");
        items.push(format!(
            "timeouts on within 5% of off: {}{} — on/off {list}",
            verdict(ok),
            if r.quick {
                " (1-second runs, indicative only)"
            } else {
                ""
            }
        ));
    }
    if let Some(l) = &r.log_cost {
        items.push(super::log_cost::targets(l, r.quick));
    }
    if let Some(l) = &r.latency {
        items.push(super::latency::targets(l));
    }
    if let Some(m) = &r.models {
        items.extend(super::models::targets(m));
    }
    items
}

/// Routes of the serving runs, in the order measured.
fn routes(s: &Serving) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &s.runs {
        if !out.contains(&r.route) {
            out.push(r.route.clone());
        }
    }
    out
}

fn pi(ctx: &Ctx, p: &PiCompute) -> Result<(String, String)> {
    let med = |v: &[f64]| median(v);
    let mut md = String::new();
    writeln!(
        md,
        "## 1. Pi compute: v1 (picrunch, Machin) and v2 (Chudnovsky)\n"
    )?;
    writeln!(md, "Median wall time of computing π to N decimals (reps per size in brackets). *Native*: \
        `pi_core::pi_string` called in-process by `native-control --time-pi`. *Wasm (fnhost)*: the \
        component behind fnhost, timed by the client around one `GET …?ndigits=N` on a new \
        connection (includes HTTP, a fresh instance and JSON; at 10^3 digits that overhead \
        dominates). *mpmath*: `mpmath.mp.dps = N+10; str(mpmath.mp.pi)` in-process, with mpmath's \
        cached π cleared before each run, gmpy2 backend. Ratio = time / mpmath time (lower is \
        faster). All results were checked digit-for-digit against mpmath (first 12 and last 20 digits, length).\n")?;
    writeln!(md, "Commands:\n")?;
    writeln!(md, "```sh")?;
    writeln!(
        md,
        "target/release/native-control --time-pi chudnovsky|machin --ndigits N --reps R"
    )?;
    writeln!(
        md,
        "{}   # with the manifest below (v2 on /api/v0/pi, v1 on {PI_V1_ROUTE})",
        fnhost_shown("target/…/pi-bench.toml", "")
    )?;
    writeln!(
        md,
        "GET 'http://$ADDR/api/v0/pi?ndigits=N'   and   GET 'http://$ADDR{PI_V1_ROUTE}?ndigits=N'"
    )?;
    writeln!(
        md,
        "python3 -c <MPMATH_SCRIPT in xtask/src/bench/pi_compute.rs> N:R …"
    )?;
    writeln!(md, "```\n")?;
    writeln!(
        md,
        "<details><summary>pi-bench.toml</summary>\n\n```toml\n{}```\n</details>\n",
        p.manifest
    )?;
    writeln!(md, "| algorithm | digits | native | wasm (fnhost, HTTP) | mpmath+gmpy2 | native / mpmath | wasm / mpmath | wasm / native |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (algo, label) in [
        (Algo::Chudnovsky, "v2 Chudnovsky"),
        (Algo::Machin, "v1 Machin (picrunch)"),
    ] {
        let mut nat_pts = Vec::new();
        let mut wasm_pts = Vec::new();
        for &n in p.sizes(algo) {
            let (Some(nv), Some(wv), Some(mv)) = (p.native(algo, n), p.wasm(algo, n), p.mpmath(n))
            else {
                continue;
            };
            let (tn, tw, tm) = (med(&nv.seconds), med(&wv.seconds), med(&mv.seconds));
            nat_pts.push((n as f64, tn));
            wasm_pts.push((n as f64, tw));
            writeln!(
                md,
                "| {label} | {n} | {} [{}] | {} [{}] | {} [{}] | {:.2} | {:.2} | {:.2} |",
                fmt_s(tn),
                nv.seconds.len(),
                fmt_s(tw),
                wv.seconds.len(),
                fmt_s(tm),
                mv.seconds.len(),
                tn / tm,
                tw / tm,
                tw / tn
            )?;
        }
        series.push((format!("{label}, native"), nat_pts));
        series.push((format!("{label}, wasm via fnhost (HTTP)"), wasm_pts));
    }
    series.push((
        "mpmath + gmpy2".into(),
        p.mpmath_gmpy2
            .iter()
            .map(|m| (m.ndigits as f64, med(&m.seconds)))
            .collect(),
    ));
    writeln!(md)?;

    writeln!(
        md,
        "**Peak memory** at the largest size of each algorithm:\n"
    )?;
    writeln!(md, "| algorithm | digits | native process peak RSS (VmHWM) | mpmath process peak RSS (ru_maxrss; after import: baseline) | fnhost peak-RSS delta during the request |")?;
    writeln!(md, "|---|---:|---:|---:|---:|")?;
    let native_peak_mib = |algo: Algo, n: usize| {
        p.native(algo, n)
            .and_then(|v| v.peak_rss_kib)
            .map_or(f64::NAN, |k| k as f64 / 1024.0)
    };
    for m in &p.memory_largest {
        let mp_cell = match p.mpmath(m.ndigits) {
            Some(mv) if m.algo == Algo::Chudnovsky => format!(
                "{:.1} MiB (baseline {:.1} MiB)",
                mv.peak_rss_kib as f64 / 1024.0,
                mv.baseline_rss_kib as f64 / 1024.0
            ),
            _ => "—".into(),
        };
        writeln!(
            md,
            "| {} | {} | {:.1} MiB | {mp_cell} | {:.1} MiB |",
            m.algo.name(),
            m.ndigits,
            native_peak_mib(m.algo, m.ndigits),
            m.host_peak_delta_kib as f64 / 1024.0
        )?;
    }
    writeln!(md, "\nThe wasm guest's linear memory is not visible from outside the host, so the wasm column \
        is the fnhost process's peak RSS (`VmHWM` in `/proc/PID/status`) after the request minus \
        before it, measured in a freshly started fnhost after one small warm-up request: it \
        covers the guest's linear-memory pages touched by that request plus the host's copies of \
        the response body. The mpmath peak is taken after all sizes up to this one ran in the \
        same process (ru_maxrss only grows).\n")?;

    // v1 against the original CPython picrunch.
    let py = &p.picrunch_cpython;
    let py_n = py.ndigits;
    let v1n = p.native(Algo::Machin, py_n).context("no v1 native run")?;
    let v1w = p.wasm(Algo::Machin, py_n).context("no v1 wasm run")?;
    let (tv1n, tv1w, tpy) = (med(&v1n.seconds), med(&v1w.seconds), med(&py.seconds));
    let faster = |r: f64| {
        if r >= 1.0 {
            format!("v1 {r:.2}× faster")
        } else {
            format!("v1 {:.2}× slower", 1.0 / r)
        }
    };
    writeln!(md, "**v1 against the original picrunch** (issue: v1 vs the original CPython picrunch, Machin with \
        Python integers): `bench/picrunch.py` is the same algorithm (Machin's formula in fixed-point \
        integers with 10 guard digits) in {}; it times itself in-process (`time.perf_counter` around \
        the computation, not the interpreter start-up) and prints the sha256 of its decimals, which was checked \
        against the sha256 of the first {py_n} decimals of `functions/pi/core/tests/data/pi-1m.txt` \
        (`{}`…). v1 native and v1 wasm are the rows above (native in-process; wasm = one HTTP request to fnhost). \
        Ratio = CPython time / v1 time (how many times faster v1 is).\n", py.python, &py.sha256[..16])?;
    writeln!(md, "```sh\n{}   # ×{}, prints \"seconds sha256\"; the -X lifts Python ≥ 3.11's 4300-digit limit on int → str\n```\n", py.command, py.seconds.len())?;
    writeln!(md, "| digits | CPython picrunch (original) | v1 native | v1 wasm via fnhost (HTTP) | CPython / v1 native | CPython / v1 wasm |")?;
    writeln!(md, "|---:|---:|---:|---:|---:|---:|")?;
    writeln!(
        md,
        "| {py_n} | {} [{}] | {} [{}] | {} [{}] | {:.2} ({}) | {:.2} ({}) |\n",
        fmt_s(tpy),
        py.seconds.len(),
        fmt_s(tv1n),
        v1n.seconds.len(),
        fmt_s(tv1w),
        v1w.seconds.len(),
        tpy / tv1n,
        faster(tpy / tv1n),
        tpy / tv1w,
        faster(tpy / tv1w)
    )?;

    plot::loglog(
        &ctx.png_dir.join("pi_time.png"),
        "Time to compute pi (median, log-log)",
        "decimal digits",
        "seconds",
        &series,
    )?;
    writeln!(
        md,
        "![time to compute pi vs digits, log-log]({}pi_time.png)\n",
        ctx.png_rel
    )?;

    let mut line = String::from("Pi compute (median):");
    for (algo, label) in [(Algo::Chudnovsky, "v2"), (Algo::Machin, "v1")] {
        let n = *p.sizes(algo).last().context("no sizes")?;
        let (Some(nv), Some(wv), Some(mv)) = (p.native(algo, n), p.wasm(algo, n), p.mpmath(n))
        else {
            continue;
        };
        let (tn, tw, tm) = (med(&nv.seconds), med(&wv.seconds), med(&mv.seconds));
        write!(
            line,
            " {label} at {n} digits: native {}, wasm via fnhost {} ({:.2}× native), mpmath+gmpy2 {} (native/mpmath {:.2}, wasm/mpmath {:.2});",
            fmt_s(tn), fmt_s(tw), tw / tn, fmt_s(tm), tn / tm, tw / tm
        )?;
    }
    write!(
        line,
        " original CPython picrunch at {py_n} digits {} vs v1 native {} (CPython/v1 {:.2}: {}) and v1 wasm via fnhost {} (CPython/v1 {:.2}: {});",
        fmt_s(tpy),
        fmt_s(tv1n),
        tpy / tv1n,
        faster(tpy / tv1n),
        fmt_s(tv1w),
        tpy / tv1w,
        faster(tpy / tv1w)
    )?;
    if let Some(m) = p.memory_largest.first() {
        write!(
            line,
            " peak memory at {} digits (v2): native process {:.1} MiB, fnhost peak-RSS delta {:.1} MiB.",
            m.ndigits,
            native_peak_mib(Algo::Chudnovsky, m.ndigits),
            m.host_peak_delta_kib as f64 / 1024.0
        )?;
    }
    Ok((line, md))
}

fn serving(ctx: &Ctx, quick: bool, s: &Serving) -> Result<(String, String)> {
    let secs = s.seconds_per_run;
    let routes = routes(s);
    let mut md = String::new();
    writeln!(md, "## 2. Serving throughput and latency\n")?;
    let rounds = if s.rounds > 1 {
        format!(
            " in each of {} rounds; every server is started anew for each round and the servers \
            take their turns in the opposite order in odd rounds (a process measured once can be a \
            few percent off its twin, bench/analysis.md), and a cell shows the median round (the \
            rounds' req/s in brackets)",
            s.rounds
        )
    } else {
        String::new()
    };
    writeln!(md, "wrk on 127.0.0.1 for {secs} s per cell{}{rounds}; wrk uses min(connections, 2) threads. Routes: \
        `{IRIS_PATH}` (iris GET) and `{PI_PATH}` (pi v2). fnhost and `wasmtime serve` run the same modules: pi \
        as built without Spin's variables (`{PORTABLE_PI}`, `--no-default-features`; it imports only WASI \
        and wasi:http, which `wasmtime serve` implements), so fnhost serves `spin.toml` with that source. \
        Every server's answer was checked before and after each run. \
        *fresh* = a new instance per request (fnhost's default; `wasmtime serve --max-instance-reuse-count 1`). \
        *reuse128* = fnhost with `instance_reuse = 128`; *wasmtime serve default* = its defaults for WASIp3 \
        components (reuse up to 128 requests, up to 16 concurrently per instance). *native* = `native-control`, \
        the same `pi-core`/`iris-core` functions behind a plain hyper 1 server (it looks at the iris model \
        file on every request by the same rule as the component: iris-core's `model_file`). fnhost runs \
        with its defaults: at most `max_concurrent_requests` = 4 × cores = {} requests execute at once \
        (the rest queue), and it logs one INFO line per request (to a file here).\n",
        if s.warm_up { " after an unrecorded 1-second warm-up" } else { "" },
        s.fnhost_max_concurrent_requests)?;
    writeln!(md, "```sh")?;
    for server in &s.servers {
        writeln!(md, "# {}\n{}", server.name, server.command)?;
    }
    writeln!(
        md,
        "# load, per route and connection count C\n{}",
        wrk::shown("/ROUTE", 16, secs).replace("-t2 -c16", "-t$((C<2?C:2)) -c$C")
    )?;
    writeln!(md, "```\n")?;
    writeln!(
        md,
        "| route | conns | server | req/s | p50 | p99 | non-2xx | socket errors |"
    )?;
    writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|")?;
    let mut shown_rows: Vec<_> = s.runs.iter().collect();
    shown_rows.sort_by_key(|r| {
        (
            routes.iter().position(|x| *x == r.route),
            r.conns,
            SERVERS.iter().position(|x| *x == r.server),
        )
    });
    for r in shown_rows {
        let rounds = if r.rounds_req_per_s.len() > 1 {
            format!(" ({})", runs(&r.rounds_req_per_s))
        } else {
            String::new()
        };
        writeln!(
            md,
            "| {} | {} | {} | {:.0}{rounds} | {} | {} | {} | {} |",
            r.route,
            r.conns,
            r.server,
            r.wrk.rps,
            fmt_ms(r.wrk.p50_ms),
            fmt_ms(r.wrk.p99_ms),
            r.wrk.non2xx,
            r.wrk.socket_errors
        )?;
    }
    writeln!(
        md,
        "\n**Like-for-like ratios of req/s** (targets: fnhost ≥ 1.2× wasmtime serve; native ≤ 1.5× fnhost). \
        Each wasmtime comparison pairs the same instance policy: *fresh vs fresh* = a new instance per request on \
        both sides (fnhost default vs `wasmtime serve --max-instance-reuse-count 1`); *reuse vs reuse* = fnhost \
        `instance_reuse = 128` vs `wasmtime serve` at its default (both reuse an instance for up to 128 requests \
        and let one WASIp3 instance take up to 16 concurrent requests). ✓ = target met, ✗ = missed:\n"
    )?;
    writeln!(md, "| route | conns | fresh vs fresh: fnhost / wasmtime serve | reuse vs reuse: fnhost reuse128 / wasmtime serve default | native / fnhost fresh | native / fnhost reuse128 |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    let cell = |x: Option<f64>, target: f64, higher_is_good: bool| match x {
        Some(v) => {
            let ok = if higher_is_good {
                v >= target
            } else {
                v <= target
            };
            format!("{v:.2} {}", if ok { "✓" } else { "✗ (missed)" })
        }
        None => "not measured".into(),
    };
    let ratio = |route: &str, a: &str, b: &str, c: u32| {
        s.rps(route, a, c)
            .zip(s.rps(route, b, c))
            .map(|(a, b)| a / b)
    };
    for route in &routes {
        for &c in &s.conns {
            writeln!(
                md,
                "| {route} | {c} | {} | {} | {} | {} |",
                cell(
                    ratio(route, "fnhost fresh", "wasmtime serve fresh", c),
                    1.2,
                    true
                ),
                cell(
                    ratio(route, "fnhost reuse128", "wasmtime serve default", c),
                    1.2,
                    true
                ),
                cell(ratio(route, "native", "fnhost fresh", c), 1.5, false),
                cell(ratio(route, "native", "fnhost reuse128", c), 1.5, false)
            )?;
        }
    }
    if !s.runs.iter().any(|r| r.server.starts_with("wasmtime")) {
        writeln!(
            md,
            "\n`wasmtime serve` was not measured in this run ({}).",
            if quick {
                "--quick never uses it"
            } else {
                "wasmtime-cli 48 not installed: `cargo install wasmtime-cli@48.0.8 --locked`"
            }
        )?;
    }
    writeln!(md)?;

    // Plot: req/s per server, per route, at the highest connection count.
    let c_max = *s.conns.last().context("no connection counts")?;
    let mut bars: Vec<(String, f64)> = Vec::new();
    for route in &routes {
        for r in s
            .runs
            .iter()
            .filter(|r| r.route == *route && r.conns == c_max)
        {
            bars.push((format!("{}, {}", r.server, route), r.wrk.rps));
        }
    }
    plot::bars(
        &ctx.png_dir.join("serving_rps.png"),
        &format!("Requests/s at {c_max} connections (wrk, {secs} s)"),
        &bars,
    )?;
    writeln!(
        md,
        "![requests per second by server]({}serving_rps.png)\n",
        ctx.png_rel
    )?;

    let c_head = if s.conns.contains(&16) {
        16
    } else {
        s.conns[0]
    };
    let mut line = format!("Serving at {c_head} connections (req/s):");
    for route in &routes {
        let v = |server: &str| s.rps(route, server, c_head);
        let f = |x: Option<f64>| x.map_or("not measured".to_string(), |x| format!("{x:.0}"));
        let r = |a: Option<f64>, b: Option<f64>| {
            a.zip(b)
                .map_or("—".to_string(), |(a, b)| format!("{:.2}", a / b))
        };
        write!(
            line,
            " {route}: fnhost fresh {}, wasmtime serve fresh {} (ratio {}), fnhost reuse128 {}, wasmtime serve default {} (ratio {}), native {} (native/fnhost fresh {}, native/fnhost reuse128 {});",
            f(v("fnhost fresh")),
            f(v("wasmtime serve fresh")),
            r(v("fnhost fresh"), v("wasmtime serve fresh")),
            f(v("fnhost reuse128")),
            f(v("wasmtime serve default")),
            r(v("fnhost reuse128"), v("wasmtime serve default")),
            f(v("native")),
            r(v("native"), v("fnhost fresh")),
            r(v("native"), v("fnhost reuse128")),
        )?;
    }
    line.push_str(" (targets: fnhost ≥ 1.2× wasmtime serve, native ≤ 1.5× fnhost).");
    Ok((line, md))
}

fn timeout_cost(t: &TimeoutCost) -> Result<(String, String)> {
    let (secs, conns, pairs) = (t.seconds_per_run, t.conns, t.runs_each);
    let wasmtime = t.rows.iter().any(|r| r.server == "wasmtime serve");
    let mut md = String::new();
    writeln!(
        md,
        "## 2b. Cost of the CPU-time timeouts (epoch interruption)\n"
    )?;
    writeln!(md, "Target: throughput with the timeout on must stay within 5% of it off (on / off ≥ 0.95). \
        Two fnhost processes serve the same manifest side by side, one with its defaults (epoch \
        interruption on: CPU-time request timeouts) and one with `--no-cpu-timeouts` (no epoch \
        interruption, no timeouts for guests that spin). In each of {pairs} rounds both are started \
        anew and wrk runs {secs} s at {conns} connections against each once{}, the one with timeouts \
        first in even rounds and the other first in odd ones (one pair of processes measured \
        repeatedly can be a few percent apart for reasons of its own: section 2c). Medians of req/s; \
        the individual runs are in brackets, in order. *fresh* = `spin-side-by-side.toml` (`spin.toml` with pi from \
        `{PORTABLE_PI}`, as in section 2; a new instance per request); *reuse128* = the same + \
        `instance_reuse = 128` for pi and iris. The idle process uses no CPU while the other \
        is measured. *CPU per request* is the server process's user + system time during a run \
        (`/proc/PID/stat`) over the requests it answered, median of the runs: less disturbed by wrk \
        sharing the two cores than req/s, and the difference is what the timeouts cost each request. \
        `wasmtime serve` rows: the same comparison for wasmtime-cli 48 with `-W timeout=30s` (its \
        timeouts are epoch interruption too) against no timeout, a new instance per request.\n",
        if t.warm_up { " (after an unrecorded 1-second warm-up of each)" } else { "" })?;
    writeln!(md, "```sh")?;
    writeln!(md, "{}", fnhost_shown("spin-side-by-side.toml", ""))?;
    writeln!(
        md,
        "{}",
        fnhost_shown("spin-side-by-side.toml", " --no-cpu-timeouts")
    )?;
    writeln!(
        md,
        "# and both again with spin-reuse128.toml (spin-side-by-side.toml + instance_reuse = 128)"
    )?;
    if wasmtime {
        writeln!(
            md,
            "{}",
            wasmtime_shown("pi_chudnovsky", true, &["-W", "timeout=30s"])
        )?;
        writeln!(
            md,
            "{}   # and both again for iris.wasm with --dir models/iris/v1::/model",
            wasmtime_shown("pi_chudnovsky", true, &[])
        )?;
    }
    writeln!(
        md,
        "{}   # /ROUTE = {IRIS_PATH}, {PI_PATH} or {PI_10K_PATH}",
        wrk::shown("/ROUTE", conns, secs)
    )?;
    writeln!(md, "```\n")?;
    writeln!(md, "| server | instances | route | timeouts on: median req/s (runs) | timeouts off: median req/s (runs) | on / off | CPU µs per request, on / off (added) | within 5%? |")?;
    writeln!(md, "|---|---|---|---:|---:|---:|---:|---|")?;
    for r in &t.rows {
        let (m_on, m_off) = (median(&r.on_req_per_s), median(&r.off_req_per_s));
        let (cpu_on, cpu_off) = r.cpu_us();
        writeln!(
            md,
            "| {} | {} | {} | {m_on:.0} ({}) | {m_off:.0} ({}) | {:.3} | {cpu_on:.0} / {cpu_off:.0} ({:+.0} µs) | {} |",
            r.server,
            r.mode,
            r.route,
            runs(&r.on_req_per_s),
            runs(&r.off_req_per_s),
            r.on_over_off(),
            cpu_on - cpu_off,
            if r.within_5_percent() { "✓ met" } else { "✗ missed" }
        )?;
    }
    writeln!(md)?;
    let mut line = format!(
        "Timeout cost ({conns} connections, median req/s, on / off; target ≥ 0.95 for fnhost):"
    );
    for r in &t.rows {
        write!(
            line,
            " {} {} {}: {:.3}{};",
            r.server,
            r.mode,
            r.route,
            r.on_over_off(),
            match (r.server.as_str(), r.within_5_percent()) {
                ("fnhost", true) => " met",
                ("fnhost", false) => " MISSED",
                _ => "",
            }
        )?;
    }
    let line = line.trim_end_matches(';').to_string() + ".";
    Ok((line, md))
}

fn startup(s: &Startup) -> Result<(String, String)> {
    let reps = s.fnhost_cold_s.len();
    let mut md = String::new();
    writeln!(md, "## 3. Start-up: process start → first 200\n")?;
    writeln!(md, "Time from spawning the process until `GET {PI_PATH}` and then `GET {IRIS_PATH}` both \
        answered 200 (polled every 2 ms on new connections), serving `spin.toml`. *Cold*: a new, empty \
        `--cache-dir` (both components compiled by Cranelift). *Warm*: the cache directory a cold run \
        filled (compiled code loaded from it). Median of {reps} (all values in results.json).\n")?;
    writeln!(
        md,
        "```sh\n{}   # cold: new empty DIR each time; warm: DIR of the first cold run",
        fnhost_shown("spin.toml", "")
    )?;
    writeln!(md, "{NATIVE_SHOWN}")?;
    if !s.wasmtime_serve_pi_s.is_empty() {
        writeln!(
            md,
            "{}   # pi only (the portable build, as in section 2), wasmtime's default cache settings",
            wasmtime_shown("pi_chudnovsky", true, &[])
        )?;
    }
    writeln!(md, "```\n")?;
    writeln!(
        md,
        "| server | cache | first 200 on both routes (median) | min | max |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|")?;
    let mut row = |server: &str, cache: &str, v: &[f64]| {
        writeln!(
            md,
            "| {server} | {cache} | {} | {} | {} |",
            fmt_s(median(v)),
            fmt_s(min(v)),
            fmt_s(max(v))
        )
    };
    row("fnhost", "cold", &s.fnhost_cold_s)?;
    row("fnhost", "warm", &s.fnhost_warm_s)?;
    row("native-control", "—", &s.native_s)?;
    if !s.wasmtime_serve_pi_s.is_empty() {
        row(
            "wasmtime serve (pi only, first 200 on pi)",
            "wasmtime default",
            &s.wasmtime_serve_pi_s,
        )?;
    }
    writeln!(md)?;
    let line = format!(
        "Start-up to first 200 on both routes (median): fnhost cold cache {}, warm cache {}; native-control {}.",
        fmt_s(median(&s.fnhost_cold_s)),
        fmt_s(median(&s.fnhost_warm_s)),
        fmt_s(median(&s.native_s))
    );
    Ok((line, md))
}

fn live_update(l: &LiveUpdate) -> Result<(String, String)> {
    let (secs, swaps, gap_ms, conns) = (l.seconds, l.swaps, l.gap_ms, l.conns);
    let w = &l.wrk;
    let mut md = String::new();
    writeln!(md, "## 4. Live update under load\n")?;
    writeln!(md, "fnhost serving `spin.toml`; wrk runs {secs} s against pi v2 (`{PI_PATH}`, {conns} connections) \
        while, from second 1, {swaps} swaps alternate `pi_picrunch.wasm` (v1) and `pi_chudnovsky.wasm` (v2) \
        through the admin API, {gap_ms} ms apart. After each admin call returns, `GET /api/v0/pi?ndigits=10` \
        is polled until the `fnhost-version` header names the new version (`pi@<first 8 hex of sha256>`). \
        The first deploy of v1 compiles it (cold cache); later swaps find both versions in the cache.\n")?;
    writeln!(md, "```sh\n{}", fnhost_shown("spin.toml", ""))?;
    writeln!(md, "{}", wrk::shown(PI_PATH, conns, secs))?;
    writeln!(md, "curl -X POST -H 'Authorization: Bearer …' 'http://$ADMIN/v1/components/pi/deploy?path=$ROOT/target/wasm32-wasip2/release/pi_picrunch.wasm'   # then pi_chudnovsky.wasm, …")?;
    writeln!(md, "```\n")?;
    writeln!(md, "| req/s | p50 | p99 | requests | non-2xx | socket errors | swaps | admin call (median / max) | admin return → new version answers (median / max) |")?;
    writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    writeln!(md, "| {:.0} | {} | {} | {} | {} | {} | {} of {swaps} | {:.1} / {:.1} ms | {:.2} / {:.2} ms |\n",
        w.rps, fmt_ms(w.p50_ms), fmt_ms(w.p99_ms), w.requests, w.non2xx, w.socket_errors,
        l.visible_after_return_ms.len(),
        median(&l.admin_call_ms), max(&l.admin_call_ms),
        median(&l.visible_after_return_ms), max(&l.visible_after_return_ms))?;
    if !l.failures.is_empty() {
        writeln!(md, "Problems: {}\n", l.failures.join("; "))?;
    }
    let line = format!(
        "Live update: {} swaps of {swaps} under {conns}-connection load: {:.0} req/s, {} non-2xx, {} socket errors; new version answering {:.2} ms (median, max {:.2} ms) after the admin call returned.",
        l.visible_after_return_ms.len(),
        w.rps,
        w.non2xx,
        w.socket_errors,
        median(&l.visible_after_return_ms),
        max(&l.visible_after_return_ms)
    );
    Ok((line, md))
}

fn per_instance(p: &PerInstance) -> Result<(String, String)> {
    let (k, sleep_ms, load_secs) = (p.concurrent, p.sleep_ms, p.load_seconds);
    let mut md = String::new();
    writeln!(md, "## 5. Per-instance cost\n")?;
    writeln!(md, "*Instantiation*: mean of fnhost's `fnhost_instantiation_duration_seconds` histogram \
        (sum/count, delta over a {load_secs}-second wrk run with 16 connections on the route; every \
        request gets a fresh instance). *Memory per concurrent instance*: measured first, in a freshly \
        started fnhost of its own (after one warm-up request; with `{}={}`, so that freed pages leave \
        the RSS at once instead of waiting in the allocator for reuse), as its RSS (`VmRSS`, \
        highest sample) while {k} requests to the test-faults component's `/sleep?ms={sleep_ms}` are \
        in flight, minus its RSS when idle just before, divided by {k}. Manifest: pi, iris and \
        test-faults (on `/faults/...`) with the spin.toml limits (128 MiB memory limit) and `max_concurrent_requests = {}` so that all \
        {k} run at once (the in-flight gauge column shows how many fnhost counted). With the pooling \
        allocator, memory slots stay resident after use, which is why its idle RSS is higher.\n",
        MEMORY_HOST_ENV.0, MEMORY_HOST_ENV.1, 2 * k)?;
    writeln!(
        md,
        "```sh\n{}={} {}   # memory; instantiation without the variable; both again with --no-pooling",
        MEMORY_HOST_ENV.0,
        MEMORY_HOST_ENV.1,
        fnhost_shown("target/…/instances.toml", "")
    )?;
    writeln!(
        md,
        "{}",
        wrk::shown(
            "/api/v01/classify?… (and /api/v0/pi?ndigits=100)",
            16,
            load_secs
        )
    )?;
    writeln!(
        md,
        "{k} × GET 'http://$ADDR/faults/sleep?ms={sleep_ms}' at once"
    )?;
    writeln!(md, "```\n")?;
    writeln!(md, "| allocator | instantiate iris (mean) | instantiate pi (mean) | idle RSS | RSS with {k} in flight | per concurrent instance | in-flight gauge seen |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|")?;
    for r in &p.runs {
        writeln!(
            md,
            "| {} | {:.1} µs (n={}) | {:.1} µs (n={}) | {:.1} MiB | {:.1} MiB | {:.0} KiB | {} |",
            r.allocator,
            r.instantiation.iris.mean_us,
            r.instantiation.iris.count,
            r.instantiation.pi.mean_us,
            r.instantiation.pi.count,
            r.idle_rss_kib as f64 / 1024.0,
            r.loaded_rss_kib as f64 / 1024.0,
            r.per_instance_kib,
            r.max_in_flight_seen
        )?;
    }
    writeln!(md)?;
    let mut line = String::from("Per instance:");
    for r in &p.runs {
        write!(
            line,
            " {}: instantiation {:.1} µs (iris) / {:.1} µs (pi), {:.0} KiB RSS per concurrent instance;",
            r.allocator,
            r.instantiation.iris.mean_us,
            r.instantiation.pi.mean_us,
            r.per_instance_kib
        )?;
    }
    let line = line.trim_end_matches(';').to_string() + ".";
    Ok((line, md))
}

fn python_pi(p: &PythonPi) -> Result<(String, String)> {
    let mut md = String::new();
    writeln!(
        md,
        "## 6. Python pi: a Spin-SDK component on fnhost vs Flask\n"
    )?;
    writeln!(md, "The same Python code, `functions/pi-python` (the talk's Machin algorithm and the \
        `/api/v0/pi` contract): built with Spin's Python SDK 5.0.0 and componentize-py 0.25.1 into \
        `pi_python.wasm` ({:.1} MB, CPython 3.14 inside) and served by fnhost with a fresh instance \
        per request and with `instance_reuse = 128`; and run natively by CPython under Flask \
        (`flask_app.py`, Flask's threaded server, as the original service ran). wrk for {} s per \
        run{}{}; every answer checked before and after each run.\n",
        p.component_bytes as f64 / 1e6,
        p.seconds_per_run,
        if p.seconds_per_run > 2 { " after an unrecorded 1-second warm-up" } else { "" },
        if p.rounds > 1 {
            format!(", in each of {} rounds: every server is started anew for each round, they take \
                their turns in the opposite order in odd rounds, and a cell shows the median round \
                (the rounds' req/s in brackets)", p.rounds)
        } else {
            String::new()
        })?;
    writeln!(md, "```sh")?;
    for (name, command) in &p.servers {
        writeln!(md, "{command}   # {name}")?;
    }
    for &c in &p.conns {
        writeln!(
            md,
            "{}",
            wrk::shown("/api/v0/pi?ndigits=10 (and 1000)", c, p.seconds_per_run)
        )?;
    }
    writeln!(md, "```\n")?;
    writeln!(md, "| server | ndigits | connections | req/s | p50 | p99 |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    for server in PYTHON_SERVERS {
        for r in p.runs.iter().filter(|r| r.server == server) {
            let rounds = if r.rounds_req_per_s.len() > 1 {
                format!(" ({})", runs(&r.rounds_req_per_s))
            } else {
                String::new()
            };
            writeln!(
                md,
                "| {} | {} | {} | {:.0}{rounds} | {:.2} ms | {:.2} ms |",
                r.server, r.ndigits, r.conns, r.wrk.rps, r.wrk.p50_ms, r.wrk.p99_ms
            )?;
        }
    }
    writeln!(md)?;
    writeln!(md, "fnhost with a fresh instance per request (first round, its own {} s run at `ndigits=10`): \
        mean instantiation {:.0} µs over {} \
        instantiations (`fnhost_instantiation_duration_seconds`); host RSS {:.0} MiB idle (the component \
        loaded from the compile cache), {:.0} MiB at its peak with {} requests instantiating at once.\n",
        p.seconds_per_run, p.instantiation_mean_us, p.instantiations,
        p.fnhost_idle_rss_kib as f64 / 1024.0, p.fnhost_peak_rss_kib as f64 / 1024.0, p.peak_conns)?;
    let c = *p.conns.last().unwrap_or(&16);
    let mut ratios = Vec::new();
    for n in PYTHON_DIGITS {
        let flask = p.rps("Flask (native CPython)", n, c);
        let fresh = p.rps("fnhost fresh", n, c);
        let reuse = p.rps("fnhost reuse128", n, c);
        if let (Some(f), Some(fr), Some(re)) = (flask, fresh, reuse) {
            ratios.push(format!(
                "ndigits={n}: fresh {:.2}× Flask, reuse {:.2}× Flask",
                fr / f,
                re / f
            ));
        }
    }
    let line = format!(
        "Python pi at {c} connections (goals: reuse ≥ 2× Flask, fresh ≥ 1× Flask): {}; instantiation {:.0} µs.",
        ratios.join("; "),
        p.instantiation_mean_us
    );
    Ok((line, md))
}

fn fleet(f: &FleetReport) -> Result<(String, String)> {
    let mut md = String::new();
    writeln!(
        md,
        "## 8. Three replicas behind a load balancer
"
    )?;
    writeln!(md, "`cargo xtask fleet` (module docs in `xtask/src/fleet/`): three containers of the `fnhost:dev` image \
        in a private Docker daemon, `--network host` on loopback ports, modules from Debian's `docker-registry` on loopback, \
        one ConfigMap directory updated kubelet-style, HAProxy in front (health checks on `/readyz`, retries of GET on \
        connection failure, empty response and 5xx, on another replica). wrk (2 threads, 8 connections, a new `x-user` per \
        request) runs through HAProxy during every scenario. *failed*: non-2xx and socket errors at wrk (HAProxy's \
        frontend counted the same); *replica failures*: failed connections, broken responses and 5xx at the replicas \
        (HAProxy's server counters); *retried*: HAProxy's retries and redispatches; *converged in*: ConfigMap write → \
        every replica's `/v1/status` reports the new state (for several steps, one value each).\n")?;
    writeln!(md, "```sh\ncargo xtask fleet\n```\n")?;
    writeln!(md, "| scenario | requests | failed | p99 | canary share (set) | converged in | replica failures | retried |")?;
    writeln!(md, "|---|---:|---:|---:|---|---|---:|---:|")?;
    for s in &f.scenarios {
        let share = if s.canary.is_empty() {
            "—".to_string()
        } else {
            s.canary
                .iter()
                .map(|(got, set)| format!("{got:.1}% ({set}%)"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let converged = s
            .converged_in_s
            .iter()
            .map(|c| format!("{c:.2} s"))
            .collect::<Vec<_>>()
            .join(", ");
        writeln!(
            md,
            "| {} | {} | {} | {} | {share} | {converged} | {} | {} |",
            s.name,
            s.requests,
            s.failed,
            fmt_ms(s.p99_ms),
            s.replica_failures,
            s.retries
        )?;
    }
    let pushes = f
        .pushes
        .iter()
        .map(|(m, bytes, ms)| format!("{m} ({} KB) {ms:.0} ms", bytes / 1000))
        .collect::<Vec<_>>()
        .join(", ");
    writeln!(md, "\n`fnhost push` over loopback: {pushes}; `fnhost pull` of pi 2.0.0: {:.0} ms. \
        Three replicas ready {:.2} s after `docker run` (each pulls and compiles three modules). Whole run {:.0} s.\n",
        f.pull_ms, f.replicas_ready_s, f.total_s)?;
    let failed: u64 = f.scenarios.iter().map(|s| s.failed).sum();
    let shares = f
        .scenarios
        .iter()
        .flat_map(|s| s.canary.iter())
        .map(|(got, set)| format!("{got:.1}% (set {set}%)"))
        .collect::<Vec<_>>()
        .join(", ");
    let killed = f.scenarios.iter().find(|s| s.name == "replica-killed");
    let line = format!(
        "Fleet (3 replicas behind HAProxy, 6 rollouts under load): {failed} failed requests in all; canary share {shares}; replica killed mid-rollout: {} failures at the replicas, {} retries by HAProxy.",
        killed.map_or(0, |k| k.replica_failures),
        killed.map_or(0, |k| k.retries)
    );
    Ok((line, md))
}
