//! Section 3, start-up: process start → first 200 on both routes, fnhost with a cold and a
//! warm compiled-module cache, the native control, and `wasmtime serve` (pi only).

use std::time::Duration;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use super::servers::{check_route, spawn_native, start_wasmtime, Fnhost, IRIS_PATH, PI_PATH};
use super::Ctx;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Startup {
    /// Seconds from spawn to the first 200 on both routes, one per start.
    pub fnhost_cold_s: Vec<f64>,
    pub fnhost_warm_s: Vec<f64>,
    pub native_s: Vec<f64>,
    /// `wasmtime serve` of pi only: to the first 200 on pi.
    pub wasmtime_serve_pi_s: Vec<f64>,
}

pub fn run(ctx: &Ctx) -> Result<Startup> {
    let reps = if ctx.quick { 1 } else { 3 };
    let manifest = ctx.root.join("spin.toml");
    // Time from spawn until both routes answered 200 (pi first, then iris).
    let fnhost_first_200 = |name: &str, cache: &std::path::Path| -> Result<f64> {
        let mut host = Fnhost::spawn(ctx, name, &manifest, cache, &[])?;
        host.server
            .wait_http_ok(&host.addr, PI_PATH, Duration::from_secs(300))?;
        let t = host
            .server
            .wait_http_ok(&host.addr, IRIS_PATH, Duration::from_secs(300))?;
        check_route(ctx, &host.addr, PI_PATH)?;
        check_route(ctx, &host.addr, IRIS_PATH)?;
        Ok(t.as_secs_f64())
    };
    let mut cold = Vec::new();
    for i in 0..reps {
        let cache = ctx.work.join(format!("cache-cold-{i}"));
        cold.push(fnhost_first_200(&format!("fnhost-start-cold-{i}"), &cache)?);
    }
    let warm_cache = ctx.work.join("cache-cold-0");
    let mut warm = Vec::new();
    for i in 0..reps {
        warm.push(fnhost_first_200(
            &format!("fnhost-start-warm-{i}"),
            &warm_cache,
        )?);
    }
    let mut native = Vec::new();
    for i in 0..reps {
        let (mut server, addr) = spawn_native(ctx, &format!("native-start-{i}"))?;
        server.wait_http_ok(&addr, PI_PATH, Duration::from_secs(30))?;
        let t = server.wait_http_ok(&addr, IRIS_PATH, Duration::from_secs(30))?;
        native.push(t.as_secs_f64());
    }
    let mut wasmtime = Vec::new();
    if ctx.wasmtime.is_some() {
        for i in 0..reps {
            let (server, _) = start_wasmtime(
                ctx,
                &format!("wasmtime-start-{i}"),
                "pi_chudnovsky",
                true,
                &[],
                PI_PATH,
            )?;
            wasmtime.push(server.started().elapsed().as_secs_f64());
        }
    }
    Ok(Startup {
        fnhost_cold_s: cold,
        fnhost_warm_s: warm,
        native_s: native,
        wasmtime_serve_pi_s: wasmtime,
    })
}
