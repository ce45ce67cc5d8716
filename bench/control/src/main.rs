//! `native-control`: the benchmark's native baseline.
//!
//! * `native-control --listen ADDR --model models/iris/v1/model.json [--algo chudnovsky|machin]`
//!   serves `/api/v0/pi` and `/api/v01/classify` from the same pure-Rust cores the wasm
//!   components use (`pi_core::http::respond`, `iris_core::respond`) behind a plain hyper 1
//!   HTTP/1.1 server on a multi-threaded tokio runtime, plus `GET /healthz`. Like a reused iris
//!   component instance, each thread keeps the model it parsed and reads the file again only
//!   when iris-core's `model_file` rule cannot prove it unchanged (so both do the same work);
//!   like the pi components (whose manifest variable `max_ndigits` it stands in for), the maximum
//!   `ndigits` comes from the environment variable `PI_MAX_NDIGITS` (default 1000000).
//! * `native-control --time-pi ALGO --ndigits N [--reps R]` computes π in-process R times and
//!   prints one JSON line: the wall time of each run in seconds, the process's peak RSS
//!   (`VmHWM`) in KiB, and the first and last digits of the result (for cross-checking).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The environment variable that plays the role of the components' `max_ndigits` variable.
const MAX_NDIGITS_ENV: &str = "PI_MAX_NDIGITS";

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pi_core::Algorithm;

const USAGE: &str = "usage:
  native-control --listen ADDR --model PATH [--algo chudnovsky|machin]
  native-control --time-pi chudnovsky|machin --ndigits N [--reps R]";

struct Config {
    model: PathBuf,
    algo: Algorithm,
    max_ndigits: usize,
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("native-control: {e}\n{USAGE}");
        std::process::exit(2);
    }
}

fn real_main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut listen = None;
    let mut model = None;
    let mut algo = Algorithm::Chudnovsky;
    let mut time_pi = None;
    let mut ndigits = None;
    let mut reps = 1usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--listen" => listen = Some(value()?),
            "--model" => model = Some(PathBuf::from(value()?)),
            "--algo" => algo = parse_algo(&value()?)?,
            "--time-pi" => time_pi = Some(parse_algo(&value()?)?),
            "--ndigits" => ndigits = Some(value()?.parse::<usize>().map_err(|e| e.to_string())?),
            "--reps" => reps = value()?.parse::<usize>().map_err(|e| e.to_string())?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if let Some(algo) = time_pi {
        let n = ndigits.ok_or("--time-pi needs --ndigits")?;
        time_pi_runs(algo, n, reps.max(1));
        return Ok(());
    }
    let listen: SocketAddr = listen
        .ok_or("--listen is required")?
        .parse()
        .map_err(|e| format!("--listen: {e}"))?;
    let model = model.ok_or("--model is required")?;
    let max_ndigits =
        pi_core::http::max_ndigits_setting(std::env::var(MAX_NDIGITS_ENV).ok().as_deref())
            .map_err(|_| format!("invalid {}", MAX_NDIGITS_ENV))?;
    let config = Arc::new(Config {
        model,
        algo,
        max_ndigits,
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(serve(listen, config))
}

fn parse_algo(s: &str) -> Result<Algorithm, String> {
    match s {
        "chudnovsky" | "v2" => Ok(Algorithm::Chudnovsky),
        "machin" | "picrunch" | "v1" => Ok(Algorithm::Machin),
        _ => Err(format!("unknown algorithm {s}")),
    }
}

fn time_pi_runs(algo: Algorithm, n: usize, reps: usize) {
    let mut times = Vec::with_capacity(reps);
    let mut last = String::new();
    for _ in 0..reps {
        let t = Instant::now();
        last = pi_core::pi_string(algo, n);
        times.push(t.elapsed().as_secs_f64());
    }
    let tail_start = last.len().saturating_sub(20).max(2.min(last.len()));
    let out = serde_json::json!({
        "algo": format!("{algo:?}"),
        "ndigits": n,
        "seconds": times,
        "peak_rss_kib": vm_hwm_kib(),
        "head": &last[..last.len().min(12)],
        "tail": &last[tail_start..],
        "len": last.len(),
    });
    println!("{out}");
}

/// Peak resident set size of this process (`VmHWM` in /proc/self/status), KiB.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn serve(listen: SocketAddr, config: Arc<Config>) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("bind {listen}: {e}"))?;
    println!(
        "native-control listening on http://{}",
        listener.local_addr().unwrap()
    );
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let config = config.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, config.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    config: Arc<Config>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, headers, body) = match path.as_str() {
        "/healthz" => (
            200,
            vec![("content-type", "text/plain".to_owned())],
            b"ok\n".to_vec(),
        ),
        "/api/v0/pi" => {
            let inm = header("if-none-match");
            // Computed inline on the runtime's worker thread, as the wasm guest is.
            let r = pi_core::http::respond(
                config.algo,
                &method,
                query.as_deref(),
                inm.as_deref(),
                config.max_ndigits,
            );
            (r.status, r.headers, r.body)
        }
        "/api/v01/classify" => {
            let content_type = header("content-type");
            let body = if method == "POST" {
                match Limited::new(req.into_body(), iris_core::MAX_BODY_BYTES + 1)
                    .collect()
                    .await
                {
                    Ok(b) => b.to_bytes().to_vec(),
                    // Over the limit: hand respond() a body one byte too long, so it answers 413.
                    Err(_) => vec![b' '; iris_core::MAX_BODY_BYTES + 1],
                }
            } else {
                Vec::new()
            };
            let r = MODEL_FILE.with_borrow_mut(|file| {
                let model = file.model(
                    || stamp(&config.model),
                    || {
                        std::fs::read(&config.model)
                            .map_err(|e| format!("cannot read {}: {e}", config.model.display()))
                    },
                );
                iris_core::respond(
                    &method,
                    query.as_deref(),
                    content_type.as_deref(),
                    &body,
                    model,
                )
            });
            (r.status, r.headers, r.body)
        }
        _ => (
            404,
            vec![("content-type", "application/json".to_owned())],
            br#"{"error":"no route"}"#.to_vec(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in headers {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            resp.headers_mut().append(name, v);
        }
    }
    Ok(resp)
}

thread_local! {
    /// The model file as this thread last read it (as one reused wasm instance keeps it).
    static MODEL_FILE: std::cell::RefCell<iris_core::ModelFile> =
        const { std::cell::RefCell::new(iris_core::ModelFile::new()) };
}

/// The model file's stamp and the time just before the stat (see iris-core's `model_file`).
fn stamp(path: &std::path::Path) -> Option<(iris_core::FileStamp, Duration)> {
    let now = fn_file_stamp::unix::now();
    Some((fn_file_stamp::unix::stamp(path).ok()?, now))
}
