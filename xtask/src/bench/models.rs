//! Section 7, model serving: one RandomForest (scikit-learn, 100 trees, Iris), side by side in
//! one sitting — fnhost's generic ONNX component (a fresh instance per request, and
//! `instance_reuse`), Seldon MLServer with mlserver-sklearn serving the same fitted estimator's
//! joblib, and onnxruntime behind a minimal Python HTTP server (`bench/ort_server.py`) serving
//! the same `model.onnx` — all answering the same Open Inference Protocol (KServe V2) infer
//! request at batch 1 and batch 100, on 127.0.0.1. wrk measures the maximum rate; oha (`-q`,
//! fixed rate) the latency at half of fnhost's maximum; and `fnhost new onnx-model` → first
//! 200 from `/v2/models/NAME/infer` is timed with a warm and a cold compiled-module cache.
//!
//! `--quick` (CI) runs fnhost and onnxruntime for a second each plus the warm `fnhost new`
//! timing; MLServer and oha (a pip environment and a cargo install) run only in full runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use devkit::process::Server;
use serde::{Deserialize, Serialize};

use super::access_log::{HandlerLatency, Mark};
use super::oha::{self, OhaResult};
use super::render::verdict;
use super::servers::{http, write_manifest, Fnhost};
use super::wrk::{self, WrkResult};
use super::Ctx;
use crate::workspace::{sklearn_python, target_dir};

/// The model, as `train.py` names it.
pub const MODEL: &str = "iris-random-forest";
/// The batch sizes measured.
pub const BATCHES: [u32; 2] = [1, 100];
/// Connections of every maximum-rate run.
pub const CONNS: u32 = 16;
/// MLServer's requirements (pinned), relative to the root.
pub const MLSERVER_REQUIREMENTS: &str = "bench/mlserver/requirements.txt";

/// The servers, as named in results and the report.
pub const FNHOST_FRESH: &str = "fnhost, fresh instance";
pub const FNHOST_REUSE: &str = "fnhost, instance_reuse = 1000";
/// The fixed-rate row that measures the machine, not a model server.
pub const FLOOR: &str = "floor: native-control, iris GET";
pub const ORT: &str = "onnxruntime + http.server";
pub const MLSERVER: &str = "MLServer 1.7.1 (mlserver-sklearn)";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ModelServing {
    pub model: String,
    /// wrk's seconds per maximum-rate run.
    pub seconds: u32,
    pub max_rate: Vec<MaxRate>,
    /// oha at a fixed rate: half of fnhost's maximum at batch 1.
    pub fixed_rate: Vec<FixedRate>,
    /// `fnhost new onnx-model` → first 200 on infer, with the compiled module cached.
    pub new_to_first_200_warm_s: Vec<f64>,
    /// The same with an empty compiled-module cache (full runs only).
    pub new_to_first_200_cold_s: Vec<f64>,
    /// Servers or measurements this run left out, and why.
    pub skipped: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MaxRate {
    pub server: String,
    pub batch: u32,
    pub wrk: WrkResult,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FixedRate {
    pub server: String,
    pub batch: u32,
    pub target_rps: f64,
    pub oha: OhaResult,
    /// fnhost's rows: the same run by its access log (handler start → response head).
    #[serde(default)]
    pub handler: Option<HandlerLatency>,
}

impl ModelServing {
    pub fn rps(&self, server: &str, batch: u32) -> Option<f64> {
        self.max_rate
            .iter()
            .find(|m| m.server == server && m.batch == batch)
            .map(|m| m.wrk.rps)
    }
}

/// The V2 infer request with `batch` rows of Iris measurements.
pub fn infer_body(batch: u32) -> String {
    let rows = [
        [5.1, 3.5, 1.4, 0.2],
        [6.7, 3.0, 5.2, 2.3],
        [5.9, 3.0, 4.2, 1.5],
    ];
    let data: Vec<f64> = (0..batch as usize)
        .flat_map(|i| rows[i % rows.len()])
        .collect();
    serde_json::json!({"inputs": [{"name": "input", "shape": [batch, 4], "datatype": "FP32", "data": data}]})
        .to_string()
}

fn infer_path(name: &str) -> String {
    format!("/v2/models/{name}/infer")
}

/// One checked infer request: 200 and one label per row.
fn check_infer(addr: &str, name: &str, batch: u32) -> Result<()> {
    let r = http(Duration::from_secs(30)).request(
        "POST",
        &format!("http://{addr}{}", infer_path(name)),
        &[("content-type", "application/json")],
        Some(infer_body(batch).as_bytes()),
    )?;
    ensure!(
        r.status == 200,
        "{addr}: infer answered {}: {}",
        r.status,
        r.text()
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body)?;
    let first = &v["outputs"][0]["data"];
    ensure!(
        first.as_array().is_some_and(|d| d.len() == batch as usize),
        "{addr}: {batch} rows in, not {batch} labels out: {}",
        r.text()
    );
    Ok(())
}

pub fn run(ctx: &Ctx) -> Result<ModelServing> {
    let seconds = if ctx.quick { 1 } else { 10 };
    let dir = ctx.work.join("models");
    let python = sklearn_python()?;
    devkit::cmd::run(
        Command::new(&python)
            .current_dir(&ctx.root)
            .arg(ctx.root.join("functions/onnx/python/train.py"))
            .arg("--out")
            .arg(&dir)
            .args(["--only", MODEL, "--with-estimator"]),
    )?;
    let model_dir = dir.join(MODEL);
    // Kept between runs (entries are keyed by module digest and engine): compiling the 20 MB
    // module takes a minute, which is measured once, as the cold `fnhost new` below.
    let cache = target_dir().join("bench-models-cache");
    let mut skipped = Vec::new();
    let mut max_rate = Vec::new();
    let mut fixed_rate = Vec::new();
    let oha = if ctx.quick {
        skipped.push("oha fixed-rate latency (full runs only: a cargo install)".into());
        None
    } else {
        Some(oha::ensure()?)
    };
    for (server, reuse) in [(FNHOST_FRESH, None), (FNHOST_REUSE, Some(1000))] {
        let manifest = fnhost_manifest(ctx, &model_dir, reuse)?;
        let host = Fnhost::start(
            ctx,
            &format!("models-{}", reuse.unwrap_or(1)),
            &manifest,
            &cache,
            &[],
        )?;
        max_rate.extend(measure(ctx, server, &host.addr, seconds)?);
        if let Some(oha) = &oha {
            let max1 = max_rate
                .iter()
                .find(|m| m.server == server && m.batch == 1)
                .map(|m| m.wrk.rps)
                .context("batch 1 was measured")?;
            let target = (max1 / 2.0).floor().max(1.0);
            let url = format!("http://{}{}", host.addr, infer_path(MODEL));
            let mark = Mark::now(&host.server);
            let o = oha::run(
                server,
                oha,
                &url,
                Some(&infer_body(1)),
                target,
                CONNS,
                seconds,
            )?;
            let handler = mark.handler_latency(&host.server, o.responses)?;
            println!(
                "bench: {server} at {target:.0} req/s: p99 {:.2} ms (in its handler {:.2} ms)",
                o.p99_ms, handler.p99_ms
            );
            fixed_rate.push(FixedRate {
                server: server.to_string(),
                batch: 1,
                target_rps: target,
                oha: o,
                handler: Some(handler),
            });
        }
    }
    // What the machine and the load generator add by themselves at the same rate: the native
    // control answers iris GETs in microseconds, so its p99 is the floor any server's p99
    // stands on here (2 shared cores, oha on them too).
    if let (Some(oha), Some(reuse)) = (&oha, fixed_rate.iter().find(|f| f.server == FNHOST_REUSE)) {
        let target = reuse.target_rps;
        let (server, addr) = super::servers::start_native(ctx, "models-floor")?;
        let url = format!("http://{addr}{}", super::servers::IRIS_PATH);
        let o = oha::run(FLOOR, oha, &url, None, target, CONNS, seconds)?;
        drop(server);
        println!(
            "bench: {FLOOR} at {target:.0} req/s: p99 {:.2} ms",
            o.p99_ms
        );
        fixed_rate.push(FixedRate {
            server: FLOOR.to_string(),
            batch: 1,
            target_rps: target,
            oha: o,
            handler: None,
        });
    }

    {
        let (server, addr) = start_ort(ctx, &python, &model_dir)?;
        max_rate.extend(measure(ctx, ORT, &addr, seconds)?);
        drop(server);
    }
    if ctx.quick {
        skipped.push(format!("{MLSERVER} (full runs only: a pip environment)"));
    } else {
        let (server, addr) = start_mlserver(ctx, &model_dir)?;
        max_rate.extend(measure(ctx, MLSERVER, &addr, seconds)?);
        drop(server);
    }

    let mut warm = Vec::new();
    for i in 0..if ctx.quick { 1 } else { 3 } {
        warm.push(new_to_first_200(
            ctx,
            &model_dir,
            &cache,
            &format!("warm-{i}"),
        )?);
    }
    let mut cold = Vec::new();
    if ctx.quick {
        skipped.push("`fnhost new` with a cold cache (full runs only: about a minute)".into());
    } else {
        let empty = ctx.work.join("models-cache-cold");
        cold.push(new_to_first_200(ctx, &model_dir, &empty, "cold")?);
    }
    Ok(ModelServing {
        model: format!("{MODEL} (RandomForestClassifier, 100 trees, Iris)"),
        seconds,
        max_rate,
        fixed_rate,
        new_to_first_200_warm_s: warm,
        new_to_first_200_cold_s: cold,
        skipped,
    })
}

/// wrk at its maximum rate against `server` at `addr`, each batch size after one checked request.
fn measure(ctx: &Ctx, server: &str, addr: &str, seconds: u32) -> Result<Vec<MaxRate>> {
    let mut out = Vec::new();
    for batch in BATCHES {
        check_infer(addr, MODEL, batch)?;
        let script = post_script(ctx, batch)?;
        let url = format!("http://{addr}{}", infer_path(MODEL));
        let w = wrk::run_script(&url, &script, CONNS, seconds)?;
        ensure!(
            w.clean(),
            "{server} batch {batch}: errors under load: {w:?}"
        );
        println!(
            "bench: {server}, batch {batch}: {:.0} req/s, p99 {:.2} ms",
            w.rps, w.p99_ms
        );
        out.push(MaxRate {
            server: server.to_string(),
            batch,
            wrk: w,
        });
    }
    Ok(out)
}

/// The wrk Lua script that POSTs the infer body of `batch` rows.
fn post_script(ctx: &Ctx, batch: u32) -> Result<PathBuf> {
    let path = ctx.work.join(format!("infer-{batch}.lua"));
    let body = serde_json::to_string(&infer_body(batch))?;
    std::fs::write(
        &path,
        format!(
            "wrk.method = \"POST\"\nwrk.body = {body}\nwrk.headers[\"Content-Type\"] = \"application/json\"\n"
        ),
    )?;
    Ok(path)
}

/// fnhost serving the model directory with the generic module; `reuse` sets `instance_reuse`.
fn fnhost_manifest(ctx: &Ctx, model_dir: &Path, reuse: Option<u32>) -> Result<PathBuf> {
    let module = ctx.wasm_dir.join("onnx_model.wasm");
    let mut text = format!(
        "spin_manifest_version = 2\n[application]\nname = \"bench-models\"\n\
         [[trigger.http]]\nroute = \"/v2/...\"\ncomponent = \"model\"\n\
         [component.model]\nsource = \"{}\"\nfiles = [{{ source = \"{}\", destination = \"/model\" }}]\n",
        module.display(),
        model_dir.display()
    );
    if let Some(n) = reuse {
        text.push_str(&format!(
            "[component.model.tool.fnhost]\ninstance_reuse = {n}\n"
        ));
    }
    write_manifest(ctx, &format!("models-{}.toml", reuse.unwrap_or(1)), &text)
}

fn start_ort(ctx: &Ctx, python: &Path, model_dir: &Path) -> Result<(Server, String)> {
    let [addr] = devkit::net::free_addrs::<1>();
    let mut cmd = Command::new(python);
    cmd.arg(ctx.root.join("bench/ort_server.py"))
        .arg("--model")
        .arg(model_dir.join("model.onnx"))
        .args(["--name", MODEL, "--port", &addr.port().to_string()]);
    let mut server = Server::spawn("ort-server", &mut cmd, &ctx.work.join("ort-server.log"))?;
    let addr = addr.to_string();
    server.wait_http_ok(&addr, "/v2/health/ready", Duration::from_secs(60))?;
    Ok((server, addr))
}

/// MLServer in its own virtual environment, serving `estimator.joblib` under the model's name.
fn start_mlserver(ctx: &Ctx, model_dir: &Path) -> Result<(Server, String)> {
    let python = devkit::python::ensure_venv(
        &ctx.root.join(MLSERVER_REQUIREMENTS),
        &target_dir().join("venv-mlserver"),
    )?;
    let [http_port, grpc_port, metrics_port] = devkit::net::free_addrs::<3>().map(|a| a.port());
    let dir = ctx.work.join("mlserver");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("settings.json"),
        serde_json::json!({
            "host": "127.0.0.1",
            "http_port": http_port,
            "grpc_port": grpc_port,
            "metrics_port": metrics_port,
        })
        .to_string(),
    )?;
    std::fs::write(
        dir.join("model-settings.json"),
        serde_json::json!({
            "name": MODEL,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": model_dir.join("estimator.joblib"), "version": "1"},
        })
        .to_string(),
    )?;
    let mlserver = python.with_file_name("mlserver");
    let mut cmd = Command::new(mlserver);
    cmd.arg("start").arg(&dir);
    let mut server = Server::spawn("mlserver", &mut cmd, &ctx.work.join("mlserver.log"))?;
    let addr = format!("127.0.0.1:{http_port}");
    server.wait_http_ok(
        &addr,
        &format!("/v2/models/{MODEL}/ready"),
        Duration::from_secs(180),
    )?;
    Ok((server, addr))
}

/// The oha command as shown in the report.
pub fn oha_shown(rate: &str, seconds: u32) -> String {
    format!(
        "oha --no-tui --output-format json -z {seconds}s -q {rate} -c {CONNS} -m POST -H 'content-type: application/json' -d \"$BODY\" 'http://$ADDR/v2/models/{MODEL}/infer'"
    )
}

/// Seconds from `fnhost new onnx-model` (in a new application directory) to the first 200 on
/// `POST /v2/models/NAME/infer` from `fnhost up` of that application, with `cache` as the
/// compiled-module cache.
fn new_to_first_200(ctx: &Ctx, model_dir: &Path, cache: &Path, tag: &str) -> Result<f64> {
    let app = ctx.work.join(format!("new-app-{tag}"));
    std::fs::create_dir_all(&app)?;
    let started = Instant::now();
    devkit::cmd::run(
        Command::new(&ctx.fnhost)
            .args(["new", "onnx-model", "bench-rf", "--model"])
            .arg(model_dir.join("model.onnx"))
            .arg("--app")
            .arg(&app),
    )?;
    let host = Fnhost::spawn(
        ctx,
        &format!("new-{tag}"),
        &app.join("spin.toml"),
        cache,
        &[],
    )?;
    let url = format!("http://{}{}", host.addr, infer_path("bench-rf"));
    let client = http(Duration::from_secs(5));
    let body = infer_body(1);
    let ok = devkit::wait_until(Duration::from_secs(600), || {
        client
            .request(
                "POST",
                &url,
                &[("content-type", "application/json")],
                Some(body.as_bytes()),
            )
            .is_ok_and(|r| r.status == 200)
    });
    let took = started.elapsed().as_secs_f64();
    ensure!(ok, "fnhost new → no 200 from {url} within 10 minutes");
    Ok(took)
}

/// The targets line's items of this section.
pub fn targets(m: &ModelServing) -> Vec<String> {
    let mut items = Vec::new();
    match (m.rps(FNHOST_REUSE, 1), m.rps(FNHOST_FRESH, 1), m.rps(MLSERVER, 1)) {
        (Some(reuse), Some(fresh), Some(ml)) => items.push(format!(
            "model serving ≥ 5× MLServer's req/s at batch 1: {} — fnhost reuse {:.1}×, fresh {:.1}×",
            verdict(reuse / ml >= 5.0),
            reuse / ml,
            fresh / ml
        )),
        _ => items.push("model serving ≥ 5× MLServer's req/s at batch 1: not measured (--quick)".into()),
    }
    match m.fixed_rate.iter().find(|f| f.server == FNHOST_REUSE) {
        Some(f) => items.push(format!(
            "model p99 ≤ 2 ms at half of fnhost's maximum rate: {} — {} at {:.0} req/s (fnhost reuse){}",
            verdict(f.oha.p99_ms <= 2.0),
            super::stats::fmt_ms(f.oha.p99_ms),
            f.target_rps,
            match m.fixed_rate.iter().find(|f| f.server == FLOOR) {
                Some(floor) => format!(
                    "; the machine's floor at that rate (native-control, iris GET) {}",
                    super::stats::fmt_ms(floor.oha.p99_ms)
                ),
                None => String::new(),
            }
        )),
        None => items.push("model p99 ≤ 2 ms at half of fnhost's maximum rate: not measured (--quick)".into()),
    }
    if !m.new_to_first_200_warm_s.is_empty() {
        let warm = super::stats::median(&m.new_to_first_200_warm_s);
        items.push(format!(
            "`fnhost new onnx-model` → first 200 < 2 s: {} — {} with the compiled module cached{}",
            verdict(warm < 2.0),
            super::stats::fmt_s(warm),
            match m.new_to_first_200_cold_s.first() {
                Some(c) => format!(", {} with an empty cache", super::stats::fmt_s(*c)),
                None => String::new(),
            }
        ));
    }
    items
}

/// The section's headline line and text.
pub fn render(m: &ModelServing) -> Result<(String, String)> {
    use std::fmt::Write as _;
    let mut md = String::new();
    writeln!(md, "## 7. Model serving: one RandomForest, four servers\n")?;
    writeln!(
        md,
        "The same model, {}: trained and exported by `functions/onnx/python/train.py --only {MODEL} \
         --with-estimator`, so `model.onnx` (served by fnhost's generic ONNX component and by \
         onnxruntime) and `estimator.joblib` (served by MLServer) are the same fitted estimator. \
         Every server answers the same Open Inference Protocol request \
         (`POST /v2/models/{MODEL}/infer`, FP32 `[batch, 4]`), checked once per batch size before \
         it is measured; all on 127.0.0.1, one after the other in one sitting. Maximum rate: wrk, \
         {CONNS} connections, {} s per run. Latency at a fixed rate: oha `-q` at half of \
         fnhost's maximum rate at batch 1; at the same rate, the native control's iris GET \
         (`target/release/native-control`, microseconds of work per request) measures the floor \
         that the machine and the load generator put under every p99 here; fnhost's own access \
         log (`ms`: handler start → response head) gives the same run's times inside its \
         handler.\n",
        m.model, m.seconds
    )?;
    writeln!(md, "```sh")?;
    writeln!(md, "{}   # route /v2/... → onnx_model.wasm, files models/{MODEL}; and with instance_reuse = 1000", super::servers::fnhost_shown("target/…/models-1.toml", ""))?;
    writeln!(md, "target/venv-sklearn/bin/python bench/ort_server.py --model DIR/model.onnx --name {MODEL} --port PORT")?;
    writeln!(md, "target/venv-mlserver/bin/mlserver start DIR   # settings.json on 127.0.0.1; model-settings.json: mlserver_sklearn.SKLearnModel, uri estimator.joblib ({MLSERVER_REQUIREMENTS})")?;
    writeln!(
        md,
        "{} -s infer-BATCH.lua   # wrk.method = \"POST\", the request as wrk.body",
        wrk::shown(&format!("/v2/models/{MODEL}/infer"), CONNS, m.seconds)
    )?;
    writeln!(md, "{}", oha_shown("RATE", m.seconds))?;
    writeln!(md, "```\n")?;
    writeln!(md, "| server | batch | req/s | rows/s | p50 | p99 |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|")?;
    for r in &m.max_rate {
        writeln!(
            md,
            "| {} | {} | {:.0} | {:.0} | {} | {} |",
            r.server,
            r.batch,
            r.wrk.rps,
            r.wrk.rps * r.batch as f64,
            super::stats::fmt_ms(r.wrk.p50_ms),
            super::stats::fmt_ms(r.wrk.p99_ms)
        )?;
    }
    if !m.fixed_rate.is_empty() {
        writeln!(
            md,
            "\n| server (batch 1) | fixed rate | achieved | success | p50 | p99 | in fnhost's handler: p50 / p99 |"
        )?;
        writeln!(md, "|---|---:|---:|---:|---:|---:|---:|")?;
        for f in &m.fixed_rate {
            writeln!(
                md,
                "| {} | {:.0} req/s | {:.0} req/s | {:.1} % | {} | {} | {} |",
                f.server,
                f.target_rps,
                f.oha.rps,
                f.oha.success_rate * 100.0,
                super::stats::fmt_ms(f.oha.p50_ms),
                super::stats::fmt_ms(f.oha.p99_ms),
                super::latency::handler_cell(f.handler.as_ref())
            )?;
        }
    }
    if !m.new_to_first_200_warm_s.is_empty() {
        let list = |v: &[f64]| {
            v.iter()
                .map(|s| super::stats::fmt_s(*s))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            md,
            "\n`fnhost new onnx-model bench-rf --model model.onnx --app NEW_DIR`, then `fnhost up` of \
             NEW_DIR/spin.toml, until `POST /v2/models/bench-rf/infer` answers 200: {} with a \
             compiled-module cache that already holds the generic module (it is the same module \
             for every model, so a machine compiles it once per fnhost build){}.",
            list(&m.new_to_first_200_warm_s),
            if m.new_to_first_200_cold_s.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} with an empty cache (Cranelift compiles the 20 MB module)",
                    list(&m.new_to_first_200_cold_s)
                )
            }
        )?;
    }
    if !m.skipped.is_empty() {
        writeln!(md, "\nNot measured in this run: {}.", m.skipped.join("; "))?;
    }
    let line = match (m.rps(FNHOST_REUSE, 1), m.rps(MLSERVER, 1), m.rps(ORT, 1)) {
        (Some(f), Some(ml), Some(o)) => format!(
            "Model serving (RandomForest, batch 1): fnhost {f:.0} req/s, onnxruntime + http.server {o:.0}, MLServer {ml:.0}."
        ),
        (Some(f), None, Some(o)) => format!(
            "Model serving (RandomForest, batch 1): fnhost {f:.0} req/s, onnxruntime + http.server {o:.0} (MLServer: full runs)."
        ),
        _ => "Model serving: incomplete run.".to_string(),
    };
    Ok((line, md))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_infer_body_has_batch_rows() {
        let v: serde_json::Value = serde_json::from_str(&infer_body(100)).unwrap();
        assert_eq!(v["inputs"][0]["shape"], serde_json::json!([100, 4]));
        assert_eq!(v["inputs"][0]["data"].as_array().unwrap().len(), 400);
    }
}
