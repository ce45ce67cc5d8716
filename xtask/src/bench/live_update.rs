//! Section 4, live update under load: wrk against pi while the admin API swaps v1 ↔ v2; how
//! long each admin call takes and when the new version answers after it returned.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

use super::servers::{check_route, get, Fnhost, PI_PATH};
use super::wrk::{self, WrkResult};
use super::Ctx;
use crate::answers::check_pi;
use crate::image::sha256_file;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LiveUpdate {
    pub wrk: WrkResult,
    /// Length of the wrk run.
    pub seconds: u32,
    pub conns: u32,
    /// Swaps attempted, and the pause after each.
    pub swaps: usize,
    pub gap_ms: u64,
    pub admin_call_ms: Vec<f64>,
    /// For each swap that became visible: admin call returned → new version answering.
    pub visible_after_return_ms: Vec<f64>,
    /// When the last swap was done, from the start of the wrk run.
    pub swaps_done_at_s: f64,
    pub failures: Vec<String>,
}

pub fn run(ctx: &Ctx) -> Result<LiveUpdate> {
    let (secs, swaps, gap_ms) = if ctx.quick {
        (4u32, 4usize, 200u64)
    } else {
        (20, 20, 300)
    };
    let conns = 16;
    let host = Fnhost::start(
        ctx,
        "fnhost-live",
        &ctx.root.join("spin.toml"),
        &ctx.work.join("cache-live"),
        &[],
    )?;
    let versions: Vec<(PathBuf, String)> = ["pi_picrunch", "pi_chudnovsky"]
        .iter()
        .map(|w| {
            let p = ctx.wasm_dir.join(format!("{w}.wasm"));
            let v = format!("pi@{}", &sha256_file(&p)?[..8]);
            Ok((p, v))
        })
        .collect::<Result<_>>()?;
    check_route(ctx, &host.addr, PI_PATH)?;
    let load = wrk::start(&format!("http://{}{PI_PATH}", host.addr), conns, secs)?;
    let wrk_started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let mut admin_ms = Vec::new();
    let mut visible_ms = Vec::new();
    let mut failures = Vec::new();
    for i in 0..swaps {
        let (path, version) = &versions[i % 2];
        let q = format!("/v1/components/pi/deploy?path={}", path.display());
        let t = Instant::now();
        let r = host.admin("POST", &q, Duration::from_secs(120))?;
        admin_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        if r.status != 200 {
            failures.push(format!(
                "swap {i}: admin answered {} {}",
                r.status,
                r.text()
            ));
            continue;
        }
        let returned = Instant::now();
        loop {
            let r = get(&host.addr, "/api/v0/pi?ndigits=10", Duration::from_secs(30))?;
            if r.status == 200 && r.header("fnhost-version") == Some(version.as_str()) {
                check_pi(&ctx.root, &r, 10)?;
                visible_ms.push(returned.elapsed().as_secs_f64() * 1000.0);
                break;
            }
            if returned.elapsed() > Duration::from_secs(10) {
                failures.push(format!(
                    "swap {i}: {version} not visible after 10 s (last: {} {:?})",
                    r.status,
                    r.header("fnhost-version")
                ));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(gap_ms));
    }
    let swaps_done_at = wrk_started.elapsed().as_secs_f64();
    let w = load.finish()?;
    check_route(ctx, &host.addr, PI_PATH)?;
    drop(host);
    if ctx.quick {
        ensure!(failures.is_empty(), "live update: {}", failures.join("; "));
    }
    if swaps_done_at > secs as f64 {
        // Not an error: the last swaps just ran after the load ended.
        failures.push(format!(
            "the swaps took {swaps_done_at:.1} s, longer than the {secs} s wrk run"
        ));
    }
    if ctx.quick {
        ensure!(
            w.non2xx == 0 && w.socket_errors == 0,
            "live update: {} non-2xx, {} socket errors",
            w.non2xx,
            w.socket_errors
        );
    }
    Ok(LiveUpdate {
        wrk: w,
        seconds: secs,
        conns,
        swaps,
        gap_ms,
        admin_call_ms: admin_ms,
        visible_after_return_ms: visible_ms,
        swaps_done_at_s: swaps_done_at,
        failures,
    })
}
