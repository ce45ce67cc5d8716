//! Section 1, pi compute: v1 (picrunch, Machin) and v2 (Chudnovsky) natively in-process,
//! as wasm through fnhost over HTTP, and mpmath+gmpy2 in-process, every result checked
//! digit for digit; peak memory at the largest sizes; the original picrunch in CPython.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use devkit::cmd::capture;
use serde::{Deserialize, Serialize};

use super::servers::{get, warm_up_pi, write_manifest, Fnhost, ROOT_SHOWN};
use super::Ctx;
use crate::answers::{check_pi, pi_decimals};

/// Route the pi benchmark manifest serves v1 (picrunch) on, next to v2 on /api/v0/pi.
pub const PI_V1_ROUTE: &str = "/bench/pi-v1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    /// v2.
    #[serde(alias = "Chudnovsky")]
    Chudnovsky,
    /// v1 (picrunch).
    #[serde(alias = "Machin")]
    Machin,
}

impl Algo {
    pub fn name(self) -> &'static str {
        match self {
            Algo::Chudnovsky => "chudnovsky",
            Algo::Machin => "machin",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Algo::Chudnovsky => "/api/v0/pi",
            Algo::Machin => PI_V1_ROUTE,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PiCompute {
    /// Sizes (decimals) measured for v2 and mpmath, and for v1.
    pub v2_sizes: Vec<usize>,
    pub v1_sizes: Vec<usize>,
    /// `native-control --time-pi`: one process per algorithm and size.
    pub native: Vec<NativeRun>,
    /// One `GET …?ndigits=N` to fnhost per repetition, timed by the client.
    pub wasm_fnhost_http: Vec<WasmRun>,
    pub mpmath_gmpy2: Vec<MpmathRun>,
    /// fnhost's peak RSS around one request at the largest size of each algorithm.
    pub memory_largest: Vec<HostMemory>,
    /// The manifest fnhost served (repository root as `$ROOT`).
    pub manifest: String,
    pub picrunch_cpython: PicrunchPython,
}

/// What `native-control --time-pi` prints.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NativeRun {
    pub algo: Algo,
    pub ndigits: usize,
    pub seconds: Vec<f64>,
    pub peak_rss_kib: Option<u64>,
    pub head: String,
    pub tail: String,
    pub len: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WasmRun {
    pub algo: Algo,
    pub ndigits: usize,
    pub seconds: Vec<f64>,
}

/// What the mpmath script prints per size.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MpmathRun {
    pub ndigits: usize,
    pub seconds: Vec<f64>,
    pub peak_rss_kib: u64,
    pub baseline_rss_kib: u64,
    pub head: String,
    pub tail: String,
    pub len: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostMemory {
    pub algo: Algo,
    pub ndigits: usize,
    pub host_rss_before_kib: u64,
    pub host_hwm_before_kib: u64,
    pub host_hwm_after_kib: u64,
    pub host_peak_delta_kib: u64,
    pub seconds: f64,
}

/// `bench/picrunch.py`: the original algorithm in CPython, checked against pi-1m.txt.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PicrunchPython {
    pub ndigits: usize,
    pub seconds: Vec<f64>,
    /// sha256 of the first `ndigits` decimals, which every run printed.
    pub sha256: String,
    pub command: String,
    /// `python3 --version`.
    pub python: String,
}

impl PiCompute {
    pub fn native(&self, algo: Algo, n: usize) -> Option<&NativeRun> {
        self.native
            .iter()
            .find(|r| r.algo == algo && r.ndigits == n)
    }
    pub fn wasm(&self, algo: Algo, n: usize) -> Option<&WasmRun> {
        self.wasm_fnhost_http
            .iter()
            .find(|r| r.algo == algo && r.ndigits == n)
    }
    pub fn mpmath(&self, n: usize) -> Option<&MpmathRun> {
        self.mpmath_gmpy2.iter().find(|r| r.ndigits == n)
    }
    pub fn sizes(&self, algo: Algo) -> &[usize] {
        match algo {
            Algo::Chudnovsky => &self.v2_sizes,
            Algo::Machin => &self.v1_sizes,
        }
    }
}

const MPMATH_SCRIPT: &str = r#"
import json, resource, sys, time
import mpmath
from mpmath.libmp import libelefun
assert mpmath.libmp.BACKEND == "gmpy", "mpmath is not using gmpy2: " + mpmath.libmp.BACKEND

def forget_pi():
    # mpmath memoises pi at the highest precision computed so far; forget it so that every
    # run computes pi again.
    for cell in libelefun.pi_fixed.__closure__ or ():
        f = cell.cell_contents
        if hasattr(f, "memo_prec"):
            f.memo_prec = -1
            f.memo_val = None

def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

baseline = rss()
for arg in sys.argv[1:]:
    n, reps = map(int, arg.split(":"))
    times = []
    for _ in range(reps):
        forget_pi()
        mpmath.mp.dps = n + 10
        t = time.perf_counter()
        s = str(mpmath.mp.pi)
        times.append(time.perf_counter() - t)
    s = s[: n + 2]
    print(json.dumps({"ndigits": n, "seconds": times, "peak_rss_kib": rss(), "baseline_rss_kib": baseline,
                      "head": s[:12], "tail": s[-20:], "len": len(s)}), flush=True)
"#;

pub fn run(ctx: &Ctx) -> Result<PiCompute> {
    let (v2_sizes, v1_sizes): (Vec<usize>, Vec<usize>) = if ctx.quick {
        (vec![1_000, 10_000], vec![1_000, 10_000])
    } else {
        (
            vec![1_000, 10_000, 100_000, 1_000_000],
            vec![1_000, 10_000, 100_000],
        )
    };
    let reps = |n: usize| {
        if ctx.quick {
            3
        } else if n <= 10_000 {
            5
        } else {
            3
        }
    };

    // mpmath + gmpy2, in-process timing.
    let mut py = Command::new("python3");
    py.arg("-c").arg(MPMATH_SCRIPT);
    for &n in &v2_sizes {
        py.arg(format!("{n}:{}", reps(n)));
    }
    let mp_out = capture(&mut py)?;
    let mut mpmath = Vec::new();
    for line in mp_out.lines().filter(|l| l.starts_with('{')) {
        mpmath.push(serde_json::from_str::<MpmathRun>(line).context("the mpmath script's output")?);
    }
    ensure!(
        mpmath.len() == v2_sizes.len(),
        "mpmath script printed {} results",
        mpmath.len()
    );
    let mp_of = |n: usize| {
        mpmath
            .iter()
            .find(|m| m.ndigits == n)
            .with_context(|| format!("no mpmath result for {n}"))
    };

    // Native, one process per (algorithm, size) so the peak RSS is that run's.
    let mut native = Vec::new();
    for (algo, sizes) in [(Algo::Chudnovsky, &v2_sizes), (Algo::Machin, &v1_sizes)] {
        for &n in sizes {
            let out = capture(Command::new(&ctx.control).args([
                "--time-pi",
                algo.name(),
                "--ndigits",
                &n.to_string(),
                "--reps",
                &reps(n).to_string(),
            ]))?;
            let v: NativeRun =
                serde_json::from_str(out.trim()).context("native-control --time-pi's output")?;
            ensure!(
                v.algo == algo && v.ndigits == n,
                "native-control timed {v:?}"
            );
            let m = mp_of(n)?;
            ensure!(
                v.tail == m.tail && v.len == m.len && v.head == m.head,
                "native {} {n} digits disagree with mpmath: {v:?} vs {m:?}",
                algo.name()
            );
            native.push(v);
        }
    }

    // Wasm through fnhost over HTTP: v2 on /api/v0/pi, v1 on PI_V1_ROUTE.
    let wasm = |w: &str| ctx.wasm_dir.join(format!("{w}.wasm")).display().to_string();
    let manifest_text = format!(
        r#"spin_manifest_version = 2
[application]
name = "bench-pi"
[application.tool.fnhost]
request_timeout = "300s"
memory_limit = "128MiB"
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[[trigger.http]]
route = "{PI_V1_ROUTE}"
component = "pi-v1"
[component.pi]
source = "{}"
variables = {{ max_ndigits = "1000000" }}
[component.pi-v1]
source = "{}"
variables = {{ max_ndigits = "1000000" }}
"#,
        wasm("pi_chudnovsky"),
        wasm("pi_picrunch")
    );
    let manifest = write_manifest(ctx, "pi-bench.toml", &manifest_text)?;
    let cache = ctx.work.join("cache-pi");
    // One timed, checked request for `n` digits (and the mpmath result's last digits).
    let timed = |host: &Fnhost, algo: Algo, n: usize| -> Result<f64> {
        let t = Instant::now();
        let r = get(
            &host.addr,
            &format!("{}?ndigits={n}", algo.route()),
            Duration::from_secs(600),
        )?;
        let secs = t.elapsed().as_secs_f64();
        let pi = check_pi(&ctx.root, &r, n)?;
        ensure!(
            pi.ends_with(&mp_of(n)?.tail),
            "wasm {} {n}: wrong last digits",
            algo.name()
        );
        Ok(secs)
    };

    // Peak memory of the largest size of each algorithm, each in a fresh fnhost.
    let mut memory = Vec::new();
    for (algo, n) in [
        (Algo::Chudnovsky, *v2_sizes.last().unwrap()),
        (Algo::Machin, *v1_sizes.last().unwrap()),
    ] {
        let name = format!("fnhost-pi-mem-{}", algo.name());
        let host = Fnhost::start(ctx, &name, &manifest, &cache, &[])?;
        warm_up_pi(ctx, &host.addr, algo.route())?;
        let rss0 = host.server.status_kib("VmRSS")?;
        let hwm0 = host.server.status_kib("VmHWM")?;
        let seconds = timed(&host, algo, n)?;
        let hwm1 = host.server.status_kib("VmHWM")?;
        memory.push(HostMemory {
            algo,
            ndigits: n,
            host_rss_before_kib: rss0,
            host_hwm_before_kib: hwm0,
            host_hwm_after_kib: hwm1,
            host_peak_delta_kib: hwm1.saturating_sub(hwm0),
            seconds,
        });
    }

    let host = Fnhost::start(ctx, "fnhost-pi", &manifest, &cache, &[])?;
    let mut wasm_runs = Vec::new();
    for (algo, sizes) in [(Algo::Chudnovsky, &v2_sizes), (Algo::Machin, &v1_sizes)] {
        warm_up_pi(ctx, &host.addr, algo.route())?;
        for &n in sizes {
            println!(
                "bench: GET http://{}{}?ndigits={n} ×{}",
                host.addr,
                algo.route(),
                reps(n)
            );
            let seconds = (0..reps(n))
                .map(|_| timed(&host, algo, n))
                .collect::<Result<_>>()?;
            wasm_runs.push(WasmRun {
                algo,
                ndigits: n,
                seconds,
            });
        }
    }
    drop(host);

    Ok(PiCompute {
        picrunch_cpython: picrunch_python(ctx, *v1_sizes.last().unwrap())?,
        v2_sizes,
        v1_sizes,
        native,
        wasm_fnhost_http: wasm_runs,
        mpmath_gmpy2: mpmath,
        memory_largest: memory,
        manifest: manifest_text.replace(&ctx.root.display().to_string(), ROOT_SHOWN),
    })
}

/// The original picrunch in CPython (bench/picrunch.py), checked against pi-1m.txt.
fn picrunch_python(ctx: &Ctx, n: usize) -> Result<PicrunchPython> {
    let decimals = pi_decimals(&ctx.root)?;
    ensure!(
        decimals.len() >= n,
        "pi-1m.txt has only {} decimals",
        decimals.len()
    );
    let want_sha = crate::image::sha256_hex(&decimals.as_bytes()[..n]);
    let mut seconds = Vec::new();
    for _ in 0..3 {
        let out = capture(
            Command::new("python3")
                .current_dir(&ctx.root)
                // Python ≥ 3.11 refuses str() of integers over 4300 digits unless told otherwise.
                .args([
                    "-X",
                    "int_max_str_digits=0",
                    "bench/picrunch.py",
                    &n.to_string(),
                ]),
        )?;
        let mut it = out.split_whitespace();
        let secs: f64 = it
            .next()
            .and_then(|x| x.parse().ok())
            .with_context(|| format!("picrunch.py printed {out:?}"))?;
        let sha = it.next().unwrap_or("");
        ensure!(
            sha == want_sha,
            "picrunch.py {n}: sha256 {sha} of its decimals is not that of the first {n} decimals of pi-1m.txt ({want_sha})"
        );
        seconds.push(secs);
    }
    Ok(PicrunchPython {
        ndigits: n,
        seconds,
        sha256: want_sha,
        command: format!("python3 -X int_max_str_digits=0 bench/picrunch.py {n}"),
        python: capture(Command::new("python3").arg("--version"))?
            .trim()
            .to_string(),
    })
}
