//! `cargo xtask bench [--quick]`: measures fnhost and writes `BENCHMARKS.md` plus
//! `bench/results.json` (and the PNG plots under `bench/`).
//!
//! 1. **Pi compute**: v1 (picrunch, Machin) and v2 (Chudnovsky) natively in-process
//!    (`native-control --time-pi`), as wasm through fnhost over HTTP, and mpmath+gmpy2
//!    in-process; peak memory at the largest sizes; a log-log plot.
//! 2. **Serving**: wrk against iris GET and pi `ndigits=100` at 1, 16 and 64 connections:
//!    fnhost (fresh instance per request and `instance_reuse = 128`), `wasmtime serve` (with
//!    `--max-instance-reuse-count 1` and at its default), and `native-control` (the same
//!    pure-Rust cores behind plain hyper).
//! 2b. **Timeout cost**: the same manifest served with CPU-time timeouts on and with
//!    `--no-cpu-timeouts`, side by side (req/s and server CPU per request, iris and pi at
//!    100 and 10^4 decimals), and the same comparison for `wasmtime serve -W timeout`.
//! 3. **Start-up**: process start → first 200, with a cold and a warm compiled-module cache.
//! 4. **Live update under load**: wrk against pi while the admin API swaps v1 ↔ v2.
//! 5. **Per-instance cost**: instantiation time (metrics histogram) and RSS per concurrent
//!    instance (64 sleeping requests to the test-faults component), pooling vs `--no-pooling`.
//!
//! `--quick` (CI) uses small sizes, 2-second wrk runs at one connection count and skips
//! `wasmtime serve`; it still starts every server it uses, checks every answer, fails on any
//! error, and writes to `target/bench-quick/` instead of overwriting `BENCHMARKS.md`.
//!
//! Every server is started by this code and stopped by its PID (also on failure).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::{json, Value};

/// Admin bearer token of every fnhost the benchmark starts.
const TOKEN: &str = "bench-admin-token-0123456789abcdef";
const IRIS_PATH: &str = "/api/v01/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.3";
const PI_PATH: &str = "/api/v0/pi?ndigits=100";
/// Route the pi benchmark manifest serves v1 (picrunch) on, next to v2 on /api/v0/pi.
const PI_V1_ROUTE: &str = "/bench/pi-v1";
const PI_100: &str = "3.1415926535897932384626433832795028841971693993751058209749445923078164062862089986280348253421170679";

struct Ctx {
    quick: bool,
    root: PathBuf,
    /// Where BENCHMARKS.md goes.
    md_path: PathBuf,
    json_path: PathBuf,
    /// Directory of the PNGs, and the same as a link relative to md_path.
    png_dir: PathBuf,
    png_rel: String,
    /// Scratch: manifests, caches, logs.
    work: PathBuf,
    fnhost: PathBuf,
    control: PathBuf,
    wasm_dir: PathBuf,
    wasmtime: Option<PathBuf>,
}

pub fn run(root: &Path, quick: bool) -> Result<()> {
    let started = Instant::now();
    let ctx = prepare(root, quick)?;
    let mut rep = Report::new(&ctx)?;
    type Section = fn(&Ctx, &mut Report) -> Result<()>;
    let sections: [(&str, Section); 6] = [
        ("1. pi compute", pi_compute),
        ("2. serving", serving),
        ("2b. timeout cost", timeout_cost),
        ("3. start-up", startup),
        ("4. live update", live_update),
        ("5. per-instance cost", per_instance),
    ];
    for (name, f) in sections {
        let before = loadavg();
        let t = Instant::now();
        f(&ctx, &mut rep).with_context(|| format!("benchmark {name}"))?;
        rep.loads.push((
            name.to_string(),
            before,
            loadavg(),
            t.elapsed().as_secs_f64(),
        ));
        rep.save(&ctx)?;
    }
    targets(&ctx, &mut rep);
    rep.json["total_seconds"] = json!(started.elapsed().as_secs_f64());
    rep.save(&ctx)?;
    eprintln!(
        "bench: done in {:.0} s: {} and {}",
        started.elapsed().as_secs_f64(),
        ctx.md_path.display(),
        ctx.json_path.display()
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Preparation and the report
// ---------------------------------------------------------------------------------------------

fn prepare(root: &Path, quick: bool) -> Result<Ctx> {
    crate::build(true)?;
    crate::run(crate::cargo().args(["build", "--release", "-p", "native-control"]))?;
    ensure_wrk()?;
    crate::pip_install(&["mpmath", "gmpy2"])?;
    let (md_path, json_path, png_dir, png_rel) = if quick {
        let d = root.join("target/bench-quick");
        (
            d.join("BENCHMARKS.md"),
            d.join("results.json"),
            d.clone(),
            String::new(),
        )
    } else {
        (
            root.join("BENCHMARKS.md"),
            root.join("bench/results.json"),
            root.join("bench"),
            "bench/".to_string(),
        )
    };
    std::fs::create_dir_all(&png_dir)?;
    let work = root.join(if quick {
        "target/bench-quick/work"
    } else {
        "target/bench-work"
    });
    if work.exists() {
        std::fs::remove_dir_all(&work).with_context(|| format!("removing {}", work.display()))?;
    }
    std::fs::create_dir_all(&work)?;
    let wasm_dir = root.join("target/wasm32-wasip2/release");
    for w in ["pi_chudnovsky", "pi_picrunch", "iris", "test_faults"] {
        let p = wasm_dir.join(format!("{w}.wasm"));
        ensure!(p.exists(), "{} is missing after the build", p.display());
    }
    let wasmtime = if quick { None } else { find_wasmtime() };
    if !quick && wasmtime.is_none() {
        eprintln!("bench: `wasmtime` (wasmtime-cli 48) not found: the wasmtime serve comparison is skipped");
    }
    Ok(Ctx {
        quick,
        root: root.to_path_buf(),
        md_path,
        json_path,
        png_dir,
        png_rel,
        work,
        fnhost: root.join("target/release/fnhost"),
        control: root.join("target/release/native-control"),
        wasm_dir,
        wasmtime,
    })
}

fn ensure_wrk() -> Result<()> {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return Ok(());
    }
    apt_install("wrk")
}

/// `apt-get install -y PKG`, after an `apt-get update` if the first try fails.
fn apt_install(pkg: &str) -> Result<()> {
    crate::run(Command::new("apt-get").args(["install", "-y", pkg]))
        .or_else(|_| {
            crate::run(Command::new("apt-get").arg("update"))?;
            crate::run(Command::new("apt-get").args(["install", "-y", pkg]))
        })
        .with_context(|| format!("installing {pkg}"))
}

fn find_wasmtime() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Ok(home) = std::env::var("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/wasmtime"));
    }
    if let Ok(path) = std::env::var("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|d| d.join("wasmtime")));
    }
    candidates.into_iter().find(|p| {
        Command::new(p)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// The load averages of /proc/loadavg (1, 5, 15 minutes).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

struct Report {
    /// Headline lines, one per section, shown at the top.
    summary: Vec<(&'static str, String)>,
    /// Per section: name, load average before and after, seconds.
    loads: Vec<(String, String, String, f64)>,
    header: String,
    sections: Vec<(&'static str, String)>,
    json: Value,
}

impl Report {
    fn new(ctx: &Ctx) -> Result<Report> {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let nproc = output(&mut Command::new("nproc"))?.trim().to_string();
        let date = output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M:%S UTC"]))?
            .trim()
            .to_string();
        let mem_total = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        let kernel = output(Command::new("uname").arg("-r"))?.trim().to_string();
        let rustc = output(Command::new("rustc").arg("--version"))?
            .trim()
            .to_string();
        // `wrk --version` exits with 1.
        let wrk = Command::new("wrk")
            .arg("--version")
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            })
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let python = output(Command::new("python3").args([
            "-c",
            "import sys, mpmath, gmpy2; print(sys.version.split()[0], mpmath.__version__, gmpy2.version(), mpmath.libmp.BACKEND)",
        ]))?;
        let wasmtime = match &ctx.wasmtime {
            Some(w) => output(Command::new(w).arg("--version"))?.trim().to_string(),
            None => "not used".into(),
        };
        let cmd = if ctx.quick {
            "cargo xtask bench --quick"
        } else {
            "cargo xtask bench"
        };
        let mut header = String::new();
        writeln!(header, "# fnhost benchmarks\n")?;
        writeln!(
            header,
            "Generated by `{cmd}` on {date}; raw numbers in [`{}`]({}). Every number below comes from that run.\n",
            if ctx.quick { "results.json" } else { "bench/results.json" },
            if ctx.quick { "results.json" } else { "bench/results.json" },
        )?;
        writeln!(header, "## Machine\n")?;
        writeln!(header, "| | |\n|---|---|")?;
        writeln!(header, "| CPU (`/proc/cpuinfo`) | {cpu} |")?;
        writeln!(header, "| `nproc` | {nproc} |")?;
        writeln!(header, "| memory | {mem_total} |")?;
        writeln!(header, "| kernel | {kernel} |")?;
        writeln!(header, "| date | {date} |")?;
        writeln!(header, "| rustc | {rustc} |")?;
        writeln!(header, "| wrk | {wrk} |")?;
        writeln!(
            header,
            "| python, mpmath, gmpy2, mpmath backend | {} |",
            python.trim()
        )?;
        writeln!(
            header,
            "| wasmtime-cli (for `wasmtime serve`) | {wasmtime} |\n"
        )?;
        writeln!(
            header,
            "**The load generator (wrk) and the server under test share these {nproc} cores**, and other \
             processes on the machine may have used CPU during the run: absolute numbers are \
             lower than on a dedicated server; the ratios between servers measured the same way \
             are the meaningful part. All servers listen on 127.0.0.1; fnhost is run with \
             `RUST_BACKTRACE` unset and logs to a file.\n"
        )?;
        let json = json!({
            "generated": date,
            "quick": ctx.quick,
            "command": cmd,
            "machine": {"cpu": cpu, "nproc": nproc, "mem_total": mem_total, "kernel": kernel,
                        "rustc": rustc, "wrk": wrk, "python_mpmath_gmpy2": python.trim(), "wasmtime": wasmtime},
        });
        Ok(Report {
            summary: Vec::new(),
            loads: Vec::new(),
            header,
            sections: Vec::new(),
            json,
        })
    }

    fn headline(&mut self, key: &'static str, line: String) {
        self.summary.retain(|(k, _)| *k != key);
        self.summary.push((key, line));
    }

    /// A headline line shown first.
    fn headline_first(&mut self, key: &'static str, line: String) {
        self.summary.retain(|(k, _)| *k != key);
        self.summary.insert(0, (key, line));
    }

    fn section(&mut self, key: &'static str, md: String) {
        if let Some(s) = self.sections.iter_mut().find(|(k, _)| *k == key) {
            s.1 = md;
        } else {
            self.sections.push((key, md));
        }
    }

    fn save(&self, ctx: &Ctx) -> Result<()> {
        let mut md = self.header.clone();
        if !self.summary.is_empty() {
            md.push_str("## Headline numbers (from the tables below)\n\n");
            for (_, line) in &self.summary {
                md.push_str(&format!("- {line}\n"));
            }
            md.push('\n');
        }
        if !self.loads.is_empty() {
            md.push_str(
                "Machine load (`/proc/loadavg`: 1, 5, 15 min) around each section; a load \
                 well above 0 before a section means other processes were using the cores, and \
                 that section's absolute numbers are pessimistic:\n\n\
                 | section | load before | load after | duration |\n|---|---|---|---:|\n",
            );
            for (name, before, after, secs) in &self.loads {
                md.push_str(&format!("| {name} | {before} | {after} | {secs:.0} s |\n"));
            }
            md.push('\n');
        }
        let mut json = self.json.clone();
        json["load_average"] = Value::Array(
            self.loads
                .iter()
                .map(|(n, b, a, s)| json!({"section": n, "before": b, "after": a, "seconds": s}))
                .collect(),
        );
        for (_, s) in &self.sections {
            md.push_str(s);
            md.push('\n');
        }
        // Hand-kept notes that explain the numbers; included verbatim, not measured by this run.
        for (title, rel) in [
            (
                "Where the time goes (profiling notes, kept by hand)",
                "bench/analysis.md",
            ),
            (
                "How pi v2's arithmetic was chosen (separate measurement)",
                "functions/pi/MEASUREMENTS.md",
            ),
        ] {
            let text = std::fs::read_to_string(crate::root().join(rel))
                .with_context(|| format!("reading {rel}"))?;
            let body = text
                .lines()
                .skip_while(|l| l.starts_with("# "))
                .collect::<Vec<_>>()
                .join("\n");
            md.push_str(&format!("## {title}\n\nFrom [`{rel}`]({rel}), included as written; not re-measured by this run.\n\n{body}\n\n"));
        }
        if let Some(p) = ctx.md_path.parent() {
            std::fs::create_dir_all(p)?;
        }
        if let Some(p) = ctx.json_path.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&ctx.md_path, md)?;
        std::fs::write(&ctx.json_path, serde_json::to_string_pretty(&json)? + "\n")?;
        Ok(())
    }
}

fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("running {}", crate::shown(cmd)))?;
    ensure!(
        out.status.success(),
        "`{}` failed: {}",
        crate::shown(cmd),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

// ---------------------------------------------------------------------------------------------
// Processes, HTTP, wrk
// ---------------------------------------------------------------------------------------------

/// A server this benchmark started; killed by PID when dropped.
struct Proc {
    child: Child,
    name: String,
    log: PathBuf,
    cmdline: String,
    started: Instant,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Result<Proc> {
        let f = std::fs::File::create(&log)?;
        cmd.env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(f.try_clone()?)
            .stderr(f);
        let cmdline = crate::shown(cmd);
        eprintln!("$ {cmdline} &");
        let started = Instant::now();
        let child = cmd.spawn().with_context(|| format!("starting {cmdline}"))?;
        Ok(Proc {
            child,
            name: name.to_string(),
            log,
            cmdline,
            started,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `/proc/PID/status` field in KiB (VmRSS, VmHWM).
    fn status_kib(&self, field: &str) -> Result<u64> {
        proc_status_kib(self.pid(), field)
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} (`{}`) exited early ({status}); log {}:\n{}",
                self.name,
                self.cmdline,
                self.log.display(),
                tail(&self.log)
            );
        }
        Ok(())
    }

    /// Polls `GET path` until it answers 200; returns the time since spawn.
    fn wait_ok(&mut self, addr: &str, path: &str, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = http(addr, "GET", path, None, Duration::from_secs(30)) {
                if r.status == 200 {
                    return Ok(self.started.elapsed());
                }
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{} did not answer 200 on {path} within {timeout:?}; log:\n{}",
                    self.name,
                    tail(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Our own child, by PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(log: &Path) -> String {
    let s = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn proc_status_kib(pid: u32, field: &str) -> Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {field} in /proc/{pid}/status"))
}

fn free_addr() -> Result<String> {
    loop {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let port = l.local_addr()?.port();
        if port != 8080 {
            return Ok(format!("127.0.0.1:{port}"));
        }
    }
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("not JSON: {:.200}", self.text()))
    }
}

/// One HTTP/1.1 request on a new connection (`Connection: close`).
fn http(
    addr: &str,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    timeout: Duration,
) -> Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = bearer {
        write!(req, "Authorization: Bearer {t}\r\n")?;
    }
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| anyhow!("incomplete HTTP response from {addr}{path}"))?;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad status line from {addr}{path}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    if chunked {
        body = dechunk(&body)?;
    }
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = b
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| anyhow!("bad chunked body"))?;
        let size_str = String::from_utf8_lossy(&b[..nl]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap().trim(), 16)?;
        b = &b[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        ensure!(b.len() >= size + 2, "truncated chunked body");
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

#[derive(Clone, Debug)]
struct Wrk {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    non2xx: u64,
    socket_errors: u64,
}

impl Wrk {
    fn json(&self) -> Value {
        json!({"req_per_s": self.rps, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms,
               "requests": self.requests, "non_2xx_3xx": self.non2xx, "socket_errors": self.socket_errors})
    }
}

fn wrk_cmd(url: &str, conns: u32, secs: u32) -> Command {
    let mut c = Command::new("wrk");
    c.args([
        format!("-t{}", conns.min(2)),
        format!("-c{conns}"),
        format!("-d{secs}s"),
        "--timeout".into(),
        "30s".into(),
        "--latency".into(),
        url.to_string(),
    ]);
    c
}

/// The wrk command as shown in the report (address replaced by `$ADDR`).
fn wrk_shown(path: &str, conns: u32, secs: u32) -> String {
    format!(
        "wrk -t{} -c{conns} -d{secs}s --timeout 30s --latency 'http://$ADDR{path}'",
        conns.min(2)
    )
}

fn wrk(url: &str, conns: u32, secs: u32) -> Result<Wrk> {
    let mut c = wrk_cmd(url, conns, secs);
    eprintln!("$ {}", crate::shown(&c));
    let out = c.output().context("running wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(
        out.status.success(),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_wrk(&text).with_context(|| format!("parsing wrk output:\n{text}"))
}

fn parse_wrk(text: &str) -> Result<Wrk> {
    let mut rps = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut requests = None;
    let mut non2xx = 0;
    let mut socket_errors = 0;
    for line in text.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = v.trim().parse::<f64>().ok();
        } else if let Some(v) = l.strip_prefix("50%") {
            p50 = parse_duration_ms(v.trim());
        } else if let Some(v) = l.strip_prefix("99%") {
            p99 = parse_duration_ms(v.trim());
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            non2xx = v.trim().parse()?;
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            for part in v.split(',') {
                if let Some(n) = part.split_whitespace().nth(1) {
                    socket_errors += n.parse::<u64>()?;
                }
            }
        } else if l.contains(" requests in ") {
            requests = l.split_whitespace().next().and_then(|n| n.parse().ok());
        }
    }
    Ok(Wrk {
        rps: rps.ok_or_else(|| anyhow!("no Requests/sec"))?,
        p50_ms: p50.ok_or_else(|| anyhow!("no 50% latency"))?,
        p99_ms: p99.ok_or_else(|| anyhow!("no 99% latency"))?,
        requests: requests.ok_or_else(|| anyhow!("no request count"))?,
        non2xx,
        socket_errors,
    })
}

fn parse_duration_ms(s: &str) -> Option<f64> {
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = s.split_at(split);
    let n: f64 = n.trim().parse().ok()?;
    Some(match unit.trim() {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        "h" => n * 3_600_000.0,
        _ => return None,
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

fn fmt_s(s: f64) -> String {
    if s < 0.001 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0} µs", ms * 1000.0)
    } else {
        format!("{ms:.2} ms")
    }
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

struct Fnhost {
    proc: Proc,
    addr: String,
    admin: String,
}

impl Fnhost {
    fn start(
        ctx: &Ctx,
        name: &str,
        manifest: &Path,
        cache: &Path,
        extra: &[&str],
    ) -> Result<Fnhost> {
        let addr = free_addr()?;
        let admin = free_addr()?;
        let state = ctx.work.join(format!("state-{name}"));
        std::fs::create_dir_all(&state)?;
        let mut cmd = Command::new(&ctx.fnhost);
        cmd.current_dir(&ctx.root)
            .args(["up", "--manifest"])
            .arg(manifest)
            .args(["--listen", &addr, "--admin-listen", &admin, "--cache-dir"])
            .arg(cache)
            .arg("--state-dir")
            .arg(&state)
            .arg("--no-watch")
            .args(extra)
            .env("FNHOST_ADMIN_TOKEN", TOKEN);
        let mut proc = Proc::spawn(name, &mut cmd, ctx.work.join(format!("{name}.log")))?;
        proc.wait_ok(&addr, "/readyz", Duration::from_secs(300))?;
        Ok(Fnhost { proc, addr, admin })
    }

    fn metrics(&self) -> Result<String> {
        let r = http(
            &self.admin,
            "GET",
            "/metrics",
            Some(TOKEN),
            Duration::from_secs(10),
        )?;
        ensure!(r.status == 200, "GET /metrics: {} {}", r.status, r.text());
        Ok(r.text())
    }
}

/// The command line shown for an fnhost server in the report.
fn fnhost_shown(manifest: &str, extra: &str) -> String {
    format!(
        "FNHOST_ADMIN_TOKEN=… target/release/fnhost up --manifest {manifest} --listen $ADDR --admin-listen $ADMIN --cache-dir DIR --state-dir DIR --no-watch{extra}"
    )
}

fn start_native(ctx: &Ctx, name: &str) -> Result<(Proc, String)> {
    let addr = free_addr()?;
    let mut cmd = Command::new(&ctx.control);
    cmd.current_dir(&ctx.root)
        .args(["--listen", &addr, "--model", "models/iris/v1/model.json"]);
    let mut p = Proc::spawn(name, &mut cmd, ctx.work.join(format!("{name}.log")))?;
    p.wait_ok(&addr, "/healthz", Duration::from_secs(30))?;
    Ok((p, addr))
}

const NATIVE_SHOWN: &str =
    "target/release/native-control --listen $ADDR --model models/iris/v1/model.json";

/// `wasmtime serve` of one component; `reuse1` adds `--max-instance-reuse-count 1`.
fn wasmtime_args(wasm: &str, reuse1: bool) -> Vec<String> {
    let mut a: Vec<String> = ["serve", "-Scli", "-W", "wide-arithmetic=y"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if reuse1 {
        a.extend(["--max-instance-reuse-count".into(), "1".into()]);
    }
    if wasm == "iris" {
        a.extend(["--dir".into(), "models/iris/v1::/model".into()]);
    }
    a.push(format!("target/wasm32-wasip2/release/{wasm}.wasm"));
    a
}

fn start_wasmtime(
    ctx: &Ctx,
    name: &str,
    wasm: &str,
    reuse1: bool,
    extra: &[&str],
    probe: &str,
) -> Result<(Proc, String)> {
    let exe = ctx
        .wasmtime
        .as_ref()
        .ok_or_else(|| anyhow!("no wasmtime"))?;
    let addr = free_addr()?;
    let mut cmd = Command::new(exe);
    cmd.current_dir(&ctx.root);
    let args = wasmtime_args(wasm, reuse1);
    cmd.args(&args[..4])
        .args(extra)
        .args(["--addr", &addr])
        .args(&args[4..]);
    let mut p = Proc::spawn(name, &mut cmd, ctx.work.join(format!("{name}.log")))?;
    p.wait_ok(&addr, probe, Duration::from_secs(120))?;
    Ok((p, addr))
}

fn wasmtime_shown(wasm: &str, reuse1: bool, extra: &[&str]) -> String {
    let args = wasmtime_args(wasm, reuse1);
    let extra: String = extra.iter().map(|e| format!(" {e}")).collect();
    format!(
        "wasmtime {}{extra} --addr $ADDR {}",
        args[..4].join(" "),
        args[4..].join(" ")
    )
}

/// A manifest next to the scratch files, with absolute paths.
fn write_manifest(ctx: &Ctx, file: &str, text: &str) -> Result<PathBuf> {
    let p = ctx.work.join(file);
    std::fs::write(&p, text)?;
    Ok(p)
}

/// spin.toml with absolute paths and `instance_reuse = n` for every component.
fn spin_toml_with_reuse(ctx: &Ctx, n: u32) -> Result<String> {
    let mut text = std::fs::read_to_string(ctx.root.join("spin.toml"))?;
    let root = ctx.root.display().to_string();
    for (from, to) in [
        ("source = \"target/", format!("source = \"{root}/target/")),
        ("source = \"models/", format!("source = \"{root}/models/")),
    ] {
        ensure!(
            text.contains(from),
            "spin.toml has no `{from}`: update bench.rs"
        );
        text = text.replace(from, &to);
    }
    for comp in ["pi", "iris"] {
        let table = format!("[component.{comp}.tool.fnhost]");
        if let Some(i) = text.find(&table) {
            let at = i + table.len();
            text.insert_str(at, &format!("\ninstance_reuse = {n}"));
        } else {
            write!(text, "\n{table}\ninstance_reuse = {n}\n")?;
        }
    }
    Ok(text)
}

fn check_pi_reply(r: &Resp, n: usize) -> Result<String> {
    ensure!(
        r.status == 200,
        "pi ndigits={n}: status {} {:.300}",
        r.status,
        r.text()
    );
    let v = r.json()?;
    ensure!(
        v["ndigits"] == json!(n),
        "pi: wrong ndigits in {:.200}",
        r.text()
    );
    let pi = v["pi"]
        .as_str()
        .ok_or_else(|| anyhow!("pi: no digits"))?
        .to_string();
    ensure!(
        pi.len() == n + 2 || (n == 0 && pi == "3"),
        "pi: {} chars for ndigits={n}",
        pi.len()
    );
    let k = pi.len().min(PI_100.len());
    ensure!(pi[..k] == PI_100[..k], "pi: wrong digits {:.40}", pi);
    Ok(pi)
}

fn check_iris_reply(r: &Resp) -> Result<()> {
    ensure!(
        r.status == 200,
        "iris: status {} {:.300}",
        r.status,
        r.text()
    );
    let v = r.json()?;
    ensure!(
        v["species"]
            .as_str()
            .is_some_and(|s| s.to_lowercase().contains("setosa")),
        "iris: unexpected answer {}",
        r.text()
    );
    Ok(())
}

/// One unmeasured, checked request for 10 digits (first touch of the pool and the code pages).
fn warm_up_pi(addr: &str, route: &str) -> Result<()> {
    let r = http(
        addr,
        "GET",
        &format!("{route}?ndigits=10"),
        None,
        Duration::from_secs(60),
    )?;
    check_pi_reply(&r, 10).map(|_| ())
}

fn check_route(addr: &str, path: &str) -> Result<()> {
    let r = http(addr, "GET", path, None, Duration::from_secs(30))?;
    if let Some(n) = path.strip_prefix("/api/v0/pi?ndigits=") {
        check_pi_reply(&r, n.parse()?).map(|_| ())
    } else {
        check_iris_reply(&r)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Pi compute
// ---------------------------------------------------------------------------------------------

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

fn pi_compute(ctx: &Ctx, rep: &mut Report) -> Result<()> {
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
    eprintln!(
        "$ python3 -c <mpmath script> {}",
        v2_sizes
            .iter()
            .map(|n| format!("{n}:{}", reps(*n)))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mp_out = output(&mut py)?;
    let mut mp: Vec<Value> = Vec::new();
    for line in mp_out.lines().filter(|l| l.starts_with('{')) {
        mp.push(serde_json::from_str(line)?);
    }
    ensure!(
        mp.len() == v2_sizes.len(),
        "mpmath script printed {} results",
        mp.len()
    );
    let mp_of = |n: usize| mp.iter().find(|v| v["ndigits"] == json!(n)).cloned();

    // Native, one process per (algorithm, size) so the peak RSS is that run's.
    let mut native: Vec<Value> = Vec::new();
    for (algo, sizes) in [("chudnovsky", &v2_sizes), ("machin", &v1_sizes)] {
        for &n in sizes.iter() {
            let mut c = Command::new(&ctx.control);
            c.args([
                "--time-pi",
                algo,
                "--ndigits",
                &n.to_string(),
                "--reps",
                &reps(n).to_string(),
            ]);
            eprintln!("$ {}", crate::shown(&c));
            let mut v: Value = serde_json::from_str(output(&mut c)?.trim())?;
            let m = mp_of(n).ok_or_else(|| anyhow!("no mpmath result for {n}"))?;
            ensure!(
                v["tail"] == m["tail"] && v["len"] == m["len"] && v["head"] == m["head"],
                "native {algo} {n} digits disagree with mpmath: {v} vs {m}"
            );
            v["algo"] = json!(algo);
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
environment = {{ PI_MAX_NDIGITS = "1000000" }}
[component.pi-v1]
source = "{}"
environment = {{ PI_MAX_NDIGITS = "1000000" }}
"#,
        wasm("pi_chudnovsky"),
        wasm("pi_picrunch")
    );
    let manifest = write_manifest(ctx, "pi-bench.toml", &manifest_text)?;
    let cache = ctx.work.join("cache-pi");
    let route = |algo: &str| {
        if algo == "chudnovsky" {
            "/api/v0/pi"
        } else {
            PI_V1_ROUTE
        }
    };

    // Peak memory of the largest size of each algorithm, each in a fresh fnhost.
    let mut memory: Vec<Value> = Vec::new();
    for (algo, n) in [
        ("chudnovsky", *v2_sizes.last().unwrap()),
        ("machin", *v1_sizes.last().unwrap()),
    ] {
        let host = Fnhost::start(
            ctx,
            &format!("fnhost-pi-mem-{algo}"),
            &manifest,
            &cache,
            &[],
        )?;
        warm_up_pi(&host.addr, route(algo))?;
        let rss0 = host.proc.status_kib("VmRSS")?;
        let hwm0 = host.proc.status_kib("VmHWM")?;
        let t = Instant::now();
        let r = http(
            &host.addr,
            "GET",
            &format!("{}?ndigits={n}", route(algo)),
            None,
            Duration::from_secs(600),
        )?;
        let secs = t.elapsed().as_secs_f64();
        let hwm1 = host.proc.status_kib("VmHWM")?;
        let pi = check_pi_reply(&r, n)?;
        let m = mp_of(n).ok_or_else(|| anyhow!("no mpmath result for {n}"))?;
        ensure!(
            pi[pi.len() - 20..] == *m["tail"].as_str().unwrap(),
            "wasm {algo} {n}: wrong last digits"
        );
        memory.push(json!({"algo": algo, "ndigits": n, "host_rss_before_kib": rss0, "host_hwm_before_kib": hwm0,
                           "host_hwm_after_kib": hwm1, "host_peak_delta_kib": hwm1.saturating_sub(hwm0), "seconds": secs}));
    }

    let host = Fnhost::start(ctx, "fnhost-pi", &manifest, &cache, &[])?;
    let mut wasm_results: Vec<Value> = Vec::new();
    for (algo, sizes) in [("chudnovsky", &v2_sizes), ("machin", &v1_sizes)] {
        warm_up_pi(&host.addr, route(algo))?;
        for &n in sizes.iter() {
            let path = format!("{}?ndigits={n}", route(algo));
            eprintln!("bench: GET http://{}{path} ×{}", host.addr, reps(n));
            let mut times = Vec::new();
            for _ in 0..reps(n) {
                let t = Instant::now();
                let r = http(&host.addr, "GET", &path, None, Duration::from_secs(600))?;
                times.push(t.elapsed().as_secs_f64());
                let pi = check_pi_reply(&r, n)?;
                let m = mp_of(n).ok_or_else(|| anyhow!("no mpmath result"))?;
                ensure!(
                    pi[pi.len() - 20..] == *m["tail"].as_str().unwrap(),
                    "wasm {algo} {n}: wrong last digits"
                );
            }
            wasm_results.push(json!({"algo": algo, "ndigits": n, "seconds": times}));
        }
    }
    drop(host);

    // The original picrunch in CPython (bench/picrunch.py), checked against pi-1m.txt.
    let py_n = *v1_sizes.last().unwrap();
    let py_reps = 3;
    let pi_1m = std::fs::read_to_string(ctx.root.join("functions/pi/core/tests/data/pi-1m.txt"))
        .context("reading functions/pi/core/tests/data/pi-1m.txt")?;
    let pi_1m = pi_1m.trim();
    ensure!(
        pi_1m.len() >= py_n,
        "pi-1m.txt has only {} decimals",
        pi_1m.len()
    );
    let want_sha = crate::image::sha256_hex(&pi_1m.as_bytes()[..py_n]);
    let mut py_times = Vec::new();
    for _ in 0..py_reps {
        let mut c = Command::new("python3");
        c.current_dir(&ctx.root)
            // Python ≥ 3.11 refuses str() of integers over 4300 digits unless told otherwise.
            .args([
                "-X",
                "int_max_str_digits=0",
                "bench/picrunch.py",
                &py_n.to_string(),
            ]);
        eprintln!("$ {}", crate::shown(&c));
        let out = output(&mut c)?;
        let mut it = out.split_whitespace();
        let secs: f64 = it
            .next()
            .and_then(|x| x.parse().ok())
            .ok_or_else(|| anyhow!("picrunch.py printed {out:?}"))?;
        let sha = it.next().unwrap_or("");
        ensure!(
            sha == want_sha,
            "picrunch.py {py_n}: sha256 {sha} of its decimals is not that of the first {py_n} decimals of pi-1m.txt ({want_sha})"
        );
        py_times.push(secs);
    }
    let picrunch_py = json!({"ndigits": py_n, "seconds": py_times, "sha256": want_sha,
        "sha256_matches_pi_1m": true, "command": format!("python3 -X int_max_str_digits=0 bench/picrunch.py {py_n}")});

    // Tables.
    let med = |v: &Value| {
        median(
            &v["seconds"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect::<Vec<_>>(),
        )
    };
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
    writeln!(md, "python3 -c <MPMATH_SCRIPT in xtask/src/bench.rs> N:R …")?;
    writeln!(md, "```\n")?;
    writeln!(
        md,
        "<details><summary>pi-bench.toml</summary>\n\n```toml\n{}```\n</details>\n",
        manifest_text.replace(&ctx.root.display().to_string(), "$ROOT")
    )?;
    writeln!(md, "| algorithm | digits | native | wasm (fnhost, HTTP) | mpmath+gmpy2 | native / mpmath | wasm / mpmath | wasm / native |")?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let mut plot_series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (algo, label, sizes) in [
        ("chudnovsky", "v2 Chudnovsky", &v2_sizes),
        ("machin", "v1 Machin (picrunch)", &v1_sizes),
    ] {
        let mut nat_pts = Vec::new();
        let mut wasm_pts = Vec::new();
        for &n in sizes.iter() {
            let nv = native
                .iter()
                .find(|v| v["algo"] == json!(algo) && v["ndigits"] == json!(n))
                .unwrap();
            let wv = wasm_results
                .iter()
                .find(|v| v["algo"] == json!(algo) && v["ndigits"] == json!(n))
                .unwrap();
            let mv = mp_of(n).unwrap();
            let (tn, tw, tm) = (med(nv), med(wv), med(&mv));
            nat_pts.push((n as f64, tn));
            wasm_pts.push((n as f64, tw));
            writeln!(
                md,
                "| {label} | {n} | {} [{}] | {} [{}] | {} [{}] | {:.2} | {:.2} | {:.2} |",
                fmt_s(tn),
                reps(n),
                fmt_s(tw),
                reps(n),
                fmt_s(tm),
                reps(n),
                tn / tm,
                tw / tm,
                tw / tn
            )?;
        }
        plot_series.push((format!("{label}, native"), nat_pts));
        plot_series.push((format!("{label}, wasm via fnhost (HTTP)"), wasm_pts));
    }
    plot_series.push((
        "mpmath + gmpy2".into(),
        v2_sizes
            .iter()
            .map(|&n| (n as f64, med(&mp_of(n).unwrap())))
            .collect(),
    ));
    writeln!(md)?;

    writeln!(
        md,
        "**Peak memory** at the largest size of each algorithm:\n"
    )?;
    writeln!(md, "| algorithm | digits | native process peak RSS (VmHWM) | mpmath process peak RSS (ru_maxrss; after import: baseline) | fnhost peak-RSS delta during the request |")?;
    writeln!(md, "|---|---:|---:|---:|---:|")?;
    for m in &memory {
        let algo = m["algo"].as_str().unwrap();
        let n = m["ndigits"].as_u64().unwrap() as usize;
        let nv = native
            .iter()
            .find(|v| v["algo"] == json!(algo) && v["ndigits"] == json!(n))
            .unwrap();
        let mp_cell = match mp_of(n) {
            Some(mv) if algo == "chudnovsky" => format!(
                "{:.1} MiB (baseline {:.1} MiB)",
                mv["peak_rss_kib"].as_f64().unwrap() / 1024.0,
                mv["baseline_rss_kib"].as_f64().unwrap() / 1024.0
            ),
            _ => "—".into(),
        };
        writeln!(
            md,
            "| {algo} | {n} | {:.1} MiB | {mp_cell} | {:.1} MiB |",
            nv["peak_rss_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0,
            m["host_peak_delta_kib"].as_f64().unwrap() / 1024.0
        )?;
    }
    writeln!(md, "\nThe wasm guest's linear memory is not visible from outside the host, so the wasm column \
        is the fnhost process's peak RSS (`VmHWM` in `/proc/PID/status`) after the request minus \
        before it, measured in a freshly started fnhost after one small warm-up request: it \
        covers the guest's linear-memory pages touched by that request plus the host's copies of \
        the response body. The mpmath peak is taken after all sizes up to this one ran in the \
        same process (ru_maxrss only grows).\n")?;

    // v1 against the original CPython picrunch.
    let v1_of = |set: &[Value]| {
        set.iter()
            .find(|v| v["algo"] == json!("machin") && v["ndigits"] == json!(py_n))
            .map(med)
            .unwrap()
    };
    let (v1n, v1w, tpy) = (v1_of(&native), v1_of(&wasm_results), med(&picrunch_py));
    let faster = |r: f64| {
        if r >= 1.0 {
            format!("v1 {r:.2}× faster")
        } else {
            format!("v1 {:.2}× slower", 1.0 / r)
        }
    };
    let py_version = output(Command::new("python3").arg("--version"))?
        .trim()
        .to_string();
    writeln!(md, "**v1 against the original picrunch** (issue: v1 vs the original CPython picrunch, Machin with \
        Python integers): `bench/picrunch.py` is the same algorithm (Machin's formula in fixed-point \
        integers with 10 guard digits) in {py_version}; it times itself in-process (`time.perf_counter` around \
        the computation, not the interpreter start-up) and prints the sha256 of its decimals, which was checked \
        against the sha256 of the first {py_n} decimals of `functions/pi/core/tests/data/pi-1m.txt` \
        (`{}`…). v1 native and v1 wasm are the rows above (native in-process; wasm = one HTTP request to fnhost). \
        Ratio = CPython time / v1 time (how many times faster v1 is).\n", &want_sha[..16])?;
    writeln!(md, "```sh\npython3 -X int_max_str_digits=0 bench/picrunch.py {py_n}   # ×{py_reps}, prints \"seconds sha256\"; the -X lifts Python ≥ 3.11's 4300-digit limit on int → str\n```\n")?;
    writeln!(md, "| digits | CPython picrunch (original) | v1 native | v1 wasm via fnhost (HTTP) | CPython / v1 native | CPython / v1 wasm |")?;
    writeln!(md, "|---:|---:|---:|---:|---:|---:|")?;
    writeln!(
        md,
        "| {py_n} | {} [{py_reps}] | {} [{}] | {} [{}] | {:.2} ({}) | {:.2} ({}) |\n",
        fmt_s(tpy),
        fmt_s(v1n),
        reps(py_n),
        fmt_s(v1w),
        reps(py_n),
        tpy / v1n,
        faster(tpy / v1n),
        tpy / v1w,
        faster(tpy / v1w)
    )?;

    let png = ctx.png_dir.join("pi_time.png");
    plot_loglog(
        &png,
        "Time to compute pi (median, log-log)",
        "decimal digits",
        "seconds",
        &plot_series,
    )?;
    writeln!(
        md,
        "![time to compute pi vs digits, log-log]({}pi_time.png)\n",
        ctx.png_rel
    )?;

    let mut line = String::from("Pi compute (median):");
    for (algo, label, sizes) in [("chudnovsky", "v2", &v2_sizes), ("machin", "v1", &v1_sizes)] {
        let n = *sizes.last().unwrap();
        let find = |set: &[Value]| {
            set.iter()
                .find(|v| v["algo"] == json!(algo) && v["ndigits"] == json!(n))
                .map(med)
                .unwrap()
        };
        let (tn, tw, tm) = (find(&native), find(&wasm_results), med(&mp_of(n).unwrap()));
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
        fmt_s(v1n),
        tpy / v1n,
        faster(tpy / v1n),
        fmt_s(v1w),
        tpy / v1w,
        faster(tpy / v1w)
    )?;
    if let Some(m) = memory.first() {
        write!(
            line,
            " peak memory at {} digits (v2): native process {:.1} MiB, fnhost peak-RSS delta {:.1} MiB.",
            m["ndigits"],
            native
                .iter()
                .find(|v| v["algo"] == json!("chudnovsky") && v["ndigits"] == m["ndigits"])
                .and_then(|v| v["peak_rss_kib"].as_f64())
                .unwrap_or(f64::NAN)
                / 1024.0,
            m["host_peak_delta_kib"].as_f64().unwrap_or(f64::NAN) / 1024.0
        )?;
    }
    rep.headline("pi", line);
    rep.json["pi"] = json!({"native": native, "wasm_fnhost_http": wasm_results, "mpmath_gmpy2": mp,
                            "memory_largest": memory, "manifest": manifest_text,
                            "picrunch_cpython": picrunch_py,
                            "picrunch_ratio": {"ndigits": py_n, "cpython_over_v1_native": tpy / v1n,
                                               "cpython_over_v1_wasm_fnhost": tpy / v1w}});
    rep.section("pi", md);
    Ok(())
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

fn find_font() -> Option<Vec<u8>> {
    let candidates = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ];
    candidates.iter().find_map(|p| std::fs::read(p).ok())
}

fn register_font() -> Result<()> {
    static ONCE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *ONCE.get_or_init(|| {
        let bytes = match find_font() {
            Some(b) => b,
            None => {
                let _ = apt_install("fonts-dejavu-core");
                match find_font() {
                    Some(b) => b,
                    None => return false,
                }
            }
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
            .is_ok()
    });
    ensure!(
        ok,
        "no TrueType font for the plots (apt-get install fonts-dejavu-core)"
    );
    Ok(())
}

fn plot_loglog(
    path: &Path,
    title: &str,
    xdesc: &str,
    ydesc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let pts = series.iter().flat_map(|(_, p)| p.iter().copied());
    let (mut xmin, mut xmax, mut ymin, mut ymax) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts {
        xmin = xmin.min(x);
        xmax = xmax.max(x);
        ymin = ymin.min(y);
        ymax = ymax.max(y);
    }
    let e = plot_err;
    let root = BitMapBackend::new(path, (960, 640)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .margin(20)
        .caption(title, ("sans-serif", 24))
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (xmin / 1.5..xmax * 1.5).log_scale(),
            (ymin / 2.0..ymax * 2.0).log_scale(),
        )
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(xdesc)
        .y_desc(ydesc)
        .x_label_formatter(&|v| format!("{v:.0e}"))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()
        .map_err(e)?;
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
    ];
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = colors[i % colors.len()];
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(e)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Serving
// ---------------------------------------------------------------------------------------------

struct ServeRow {
    route: &'static str,
    server: String,
    conns: u32,
    w: Wrk,
}

fn serving(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let conns: Vec<u32> = if ctx.quick { vec![16] } else { vec![1, 16, 64] };
    let secs = if ctx.quick { 2 } else { 10 };
    let routes: [(&'static str, &'static str, &'static str); 2] = [
        ("iris GET", IRIS_PATH, "iris"),
        ("pi ndigits=100", PI_PATH, "pi_chudnovsky"),
    ];
    let mut rows: Vec<ServeRow> = Vec::new();
    let mut servers_md: Vec<(String, String)> = Vec::new();
    let measure = |server: &str,
                   addr: &str,
                   route: &'static str,
                   path: &str,
                   rows: &mut Vec<ServeRow>|
     -> Result<()> {
        check_route(addr, path)?;
        for &c in &conns {
            let url = format!("http://{addr}{path}");
            if !ctx.quick {
                wrk(&url, c, 1)?; // warm-up, not recorded
            }
            let w = wrk(&url, c, secs)?;
            if w.non2xx > 0 || w.socket_errors > 0 || w.requests == 0 {
                let msg = format!(
                    "{server} {route} c={c}: {} non-2xx, {} socket errors, {} requests",
                    w.non2xx, w.socket_errors, w.requests
                );
                if ctx.quick {
                    bail!(msg);
                }
                eprintln!("bench: WARNING {msg}");
            }
            check_route(addr, path)?;
            rows.push(ServeRow {
                route,
                server: server.to_string(),
                conns: c,
                w,
            });
        }
        Ok(())
    };

    // fnhost, fresh instance per request (spin.toml as is) and instance_reuse = 128.
    let reuse_manifest =
        write_manifest(ctx, "spin-reuse128.toml", &spin_toml_with_reuse(ctx, 128)?)?;
    let cache = ctx.work.join("cache-serve");
    for (name, manifest, shown) in [
        (
            "fnhost fresh",
            ctx.root.join("spin.toml"),
            fnhost_shown("spin.toml", ""),
        ),
        (
            "fnhost reuse128",
            reuse_manifest.clone(),
            fnhost_shown("spin-reuse128.toml", "")
                + "   # spin.toml + instance_reuse = 128 for pi and iris",
        ),
    ] {
        let host = Fnhost::start(ctx, &name.replace(' ', "-"), &manifest, &cache, &[])?;
        for (route, path, _) in routes {
            measure(name, &host.addr, route, path, &mut rows)?;
        }
        servers_md.push((name.to_string(), shown));
        drop(host);
    }
    // wasmtime serve, one process per component.
    if ctx.wasmtime.is_some() {
        for (name, reuse1) in [
            ("wasmtime serve fresh", true),
            ("wasmtime serve default", false),
        ] {
            for (route, path, wasm) in routes {
                let (p, addr) = start_wasmtime(
                    ctx,
                    &format!("{}-{wasm}", name.replace(' ', "-")),
                    wasm,
                    reuse1,
                    &[],
                    path,
                )?;
                measure(name, &addr, route, path, &mut rows)?;
                drop(p);
                servers_md.push((
                    format!("{name} ({route})"),
                    wasmtime_shown(wasm, reuse1, &[]),
                ));
            }
        }
    }
    // The native control.
    let (p, addr) = start_native(ctx, "native-control")?;
    for (route, path, _) in routes {
        measure("native", &addr, route, path, &mut rows)?;
    }
    drop(p);
    servers_md.push(("native".into(), NATIVE_SHOWN.into()));

    let mut md = String::new();
    writeln!(md, "## 2. Serving throughput and latency\n")?;
    writeln!(md, "wrk on 127.0.0.1 for {secs} s per cell{}; wrk uses min(connections, 2) threads. Routes: \
        `{IRIS_PATH}` (iris GET) and `{PI_PATH}` (pi v2). Every server's answer was checked before and after each run. \
        *fresh* = a new instance per request (fnhost's default; `wasmtime serve --max-instance-reuse-count 1`). \
        *reuse128* = fnhost with `instance_reuse = 128`; *wasmtime serve default* = its defaults for WASIp3 \
        components (reuse up to 128 requests, up to 16 concurrently per instance). *native* = `native-control`, \
        the same `pi-core`/`iris-core` functions behind a plain hyper 1 server (it reads the iris model file on \
        every request, as the component does). fnhost runs with its defaults: at most \
        `max_concurrent_requests` = 4 × cores = {} requests execute at once (the rest queue), and it \
        logs one INFO line per request (to a file here).\n",
        if ctx.quick { "" } else { " after an unrecorded 1-second warm-up" },
        4 * std::thread::available_parallelism().map_or(2, |n| n.get()))?;
    writeln!(md, "```sh")?;
    for (name, shown) in &servers_md {
        writeln!(md, "# {name}\n{shown}")?;
    }
    writeln!(
        md,
        "# load, per route and connection count C\n{}",
        wrk_shown("/ROUTE", 16, secs).replace("-t2 -c16", "-t$((C<2?C:2)) -c$C")
    )?;
    writeln!(md, "```\n")?;
    writeln!(
        md,
        "| route | conns | server | req/s | p50 | p99 | non-2xx | socket errors |"
    )?;
    writeln!(md, "|---|---:|---|---:|---:|---:|---:|---:|")?;
    const ORDER: [&str; 5] = [
        "fnhost fresh",
        "wasmtime serve fresh",
        "fnhost reuse128",
        "wasmtime serve default",
        "native",
    ];
    let mut shown_rows: Vec<&ServeRow> = rows.iter().collect();
    shown_rows.sort_by_key(|r| {
        (
            routes.iter().position(|x| x.0 == r.route),
            r.conns,
            ORDER.iter().position(|x| *x == r.server),
        )
    });
    for r in shown_rows {
        writeln!(
            md,
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            r.route,
            r.conns,
            r.server,
            r.w.rps,
            fmt_ms(r.w.p50_ms),
            fmt_ms(r.w.p99_ms),
            r.w.non2xx,
            r.w.socket_errors
        )?;
    }
    let get = |route: &str, server: &str, c: u32| {
        rows.iter()
            .find(|r| r.route == route && r.server == server && r.conns == c)
            .map(|r| r.w.rps)
    };
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
    let mut ratios = Vec::new();
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
    for (route, _, _) in routes {
        for &c in &conns {
            let ratio = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a / b);
            let f_w = ratio(
                get(route, "fnhost fresh", c),
                get(route, "wasmtime serve fresh", c),
            );
            let r_w = ratio(
                get(route, "fnhost reuse128", c),
                get(route, "wasmtime serve default", c),
            );
            let n_f = ratio(get(route, "native", c), get(route, "fnhost fresh", c));
            let n_r = ratio(get(route, "native", c), get(route, "fnhost reuse128", c));
            writeln!(
                md,
                "| {route} | {c} | {} | {} | {} | {} |",
                cell(f_w, 1.2, true),
                cell(r_w, 1.2, true),
                cell(n_f, 1.5, false),
                cell(n_r, 1.5, false)
            )?;
            ratios.push(json!({"route": route, "conns": c, "fnhost_fresh_over_wasmtime_fresh": f_w,
                "fnhost_reuse128_over_wasmtime_default": r_w, "native_over_fnhost_fresh": n_f, "native_over_fnhost_reuse128": n_r}));
        }
    }
    if ctx.wasmtime.is_none() {
        writeln!(
            md,
            "\n`wasmtime serve` was not measured in this run ({}).",
            if ctx.quick {
                "--quick never uses it"
            } else {
                "wasmtime-cli 48 not installed: `cargo install wasmtime-cli@48.0.8 --locked`"
            }
        )?;
    }
    writeln!(md)?;

    // Plot: req/s per server, per route, at the highest connection count.
    let c_max = *conns.last().unwrap();
    let png = ctx.png_dir.join("serving_rps.png");
    let mut bars: Vec<(String, f64)> = Vec::new();
    for (route, _, _) in routes {
        for r in rows.iter().filter(|r| r.route == route && r.conns == c_max) {
            bars.push((format!("{}, {}", r.server, route), r.w.rps));
        }
    }
    plot_bars(
        &png,
        &format!("Requests/s at {c_max} connections (wrk, {secs} s)"),
        &bars,
    )?;
    writeln!(
        md,
        "![requests per second by server]({}serving_rps.png)\n",
        ctx.png_rel
    )?;

    let c_head = if conns.contains(&16) { 16 } else { conns[0] };
    let mut line = format!("Serving at {c_head} connections (req/s):");
    for (route, _, _) in routes {
        let v = |server: &str| get(route, server, c_head);
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
    rep.headline("serving", line);
    rep.json["serving"] = json!({
        "seconds_per_run": secs,
        "servers": servers_md.iter().map(|(n, s)| json!({"name": n, "command": s})).collect::<Vec<_>>(),
        "wrk": wrk_shown("/ROUTE", 0, secs),
        "runs": rows.iter().map(|r| { let mut v = r.w.json(); v["route"] = json!(r.route); v["server"] = json!(r.server); v["conns"] = json!(r.conns); v }).collect::<Vec<_>>(),
        "ratios": ratios,
    });
    rep.section("serving", md);
    Ok(())
}

fn plot_bars(path: &Path, title: &str, bars: &[(String, f64)]) -> Result<()> {
    use plotters::prelude::*;
    register_font()?;
    let e = plot_err;
    let h = 120 + 34 * bars.len() as u32;
    let root = BitMapBackend::new(path, (1000, h)).into_drawing_area();
    root.fill(&WHITE).map_err(e)?;
    let max = bars.iter().map(|b| b.1).fold(1.0, f64::max) * 1.15;
    let n = bars.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .margin(15)
        .caption(title, ("sans-serif", 22))
        .x_label_area_size(40)
        .y_label_area_size(330)
        .build_cartesian_2d(0.0..max, (0..n).into_segmented())
        .map_err(e)?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc("requests / s")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_labels(bars.len())
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels
                .get((n - 1 - *i) as usize)
                .cloned()
                .unwrap_or_default(),
            _ => String::new(),
        })
        .draw()
        .map_err(e)?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (name, v))| {
            let color = if name.contains("native") {
                RGBColor(120, 120, 120)
            } else if name.contains("wasmtime") {
                RGBColor(255, 127, 14)
            } else {
                RGBColor(31, 119, 180)
            };
            let i = n - 1 - i as i32;
            let mut r = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            r.set_margin(4, 4, 0, 0);
            r
        }))
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2b. Timeout cost: epoch interruption on (default) vs --no-cpu-timeouts
// ---------------------------------------------------------------------------------------------

/// A compute-bound pi request: about 2.5 ms of guest arithmetic, mostly tight loops.
const PI_10K_PATH: &str = "/api/v0/pi?ndigits=10000";

/// CPU time a process has used so far (all threads, user + system), in µs.
fn process_cpu_us(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th
    // fields of the whole line, in clock ticks of 10 ms (USER_HZ, fixed at 100 by the kernel ABI).
    let rest = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("odd /proc/{pid}/stat"))?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> {
        Ok(fields
            .get(i)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse::<u64>()?)
    };
    Ok((ticks(11)? + ticks(12)?) * 10_000)
}

/// Runs of one route against a server with timeouts on and one with them off.
#[derive(Default)]
struct OnOff {
    rps: [Vec<f64>; 2],
    cpu_us_per_request: [Vec<f64>; 2],
}

/// wrk against `on` and `off` alternately, `pairs` times, recording req/s and the server's CPU
/// time per request (from /proc, around each run).
fn measure_on_off(
    label: &str,
    servers: [(u32, &str); 2],
    path: &str,
    conns: u32,
    secs: u32,
    pairs: usize,
    warm_up: bool,
) -> Result<OnOff> {
    let mut m = OnOff::default();
    for (_, addr) in servers {
        check_route(addr, path)?;
        if warm_up {
            wrk(&format!("http://{addr}{path}"), conns, 1)?;
        }
    }
    for _ in 0..pairs {
        for (side, (pid, addr)) in servers.into_iter().enumerate() {
            let cpu_before = process_cpu_us(pid)?;
            let w = wrk(&format!("http://{addr}{path}"), conns, secs)?;
            let cpu = process_cpu_us(pid)? - cpu_before;
            ensure!(
                w.non2xx == 0 && w.socket_errors == 0 && w.requests > 0,
                "timeout cost {label}: {} non-2xx, {} socket errors, {} requests",
                w.non2xx,
                w.socket_errors,
                w.requests
            );
            m.rps[side].push(w.rps);
            m.cpu_us_per_request[side].push(cpu as f64 / w.requests as f64);
        }
    }
    for (_, addr) in servers {
        check_route(addr, path)?;
    }
    Ok(m)
}

fn timeout_cost(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let (secs, pairs) = if ctx.quick { (1u32, 2usize) } else { (5, 3) };
    let conns = 16;
    let routes: [(&str, &str, &str); 3] = [
        ("iris GET", IRIS_PATH, "iris"),
        ("pi ndigits=100", PI_PATH, "pi_chudnovsky"),
        ("pi ndigits=10000", PI_10K_PATH, "pi_chudnovsky"),
    ];
    let reuse_manifest = write_manifest(
        ctx,
        "spin-reuse128-timeouts.toml",
        &spin_toml_with_reuse(ctx, 128)?,
    )?;
    let cache = ctx.work.join("cache-timeouts");
    let mut rows = Vec::new();
    let mut md_rows = String::new();
    let mut record = |server: &str, mode: &str, route: &str, m: OnOff| -> Result<()> {
        let [on_rps, off_rps] = &m.rps;
        let [on_cpu, off_cpu] = &m.cpu_us_per_request;
        let (m_on, m_off) = (median(on_rps), median(off_rps));
        let (cpu_on, cpu_off) = (median(on_cpu), median(off_cpu));
        let ratio = m_on / m_off;
        let met = ratio >= 0.95;
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            md_rows,
            "| {server} | {mode} | {route} | {m_on:.0} ({}) | {m_off:.0} ({}) | {ratio:.3} | {cpu_on:.0} / {cpu_off:.0} ({:+.0} µs) | {} |",
            list(on_rps),
            list(off_rps),
            cpu_on - cpu_off,
            if met { "✓ met" } else { "✗ missed" }
        )?;
        rows.push(
            json!({"server": server, "route": route, "mode": mode, "conns": conns,
            "seconds_per_run": secs,
            "timeouts_on_req_per_s": on_rps, "timeouts_off_req_per_s": off_rps,
            "timeouts_on_cpu_us_per_request": on_cpu, "timeouts_off_cpu_us_per_request": off_cpu,
            "median_on": m_on, "median_off": m_off, "on_over_off": ratio, "within_5_percent": met,
            "median_cpu_us_per_request_on": cpu_on, "median_cpu_us_per_request_off": cpu_off}),
        );
        Ok(())
    };
    for (mode, manifest) in [
        ("fresh", ctx.root.join("spin.toml")),
        ("reuse128", reuse_manifest.clone()),
    ] {
        // Both servers run side by side; only the one under load does work.
        let on = Fnhost::start(
            ctx,
            &format!("fnhost-{mode}-timeouts-on"),
            &manifest,
            &cache,
            &[],
        )?;
        let off = Fnhost::start(
            ctx,
            &format!("fnhost-{mode}-timeouts-off"),
            &manifest,
            &cache,
            &["--no-cpu-timeouts"],
        )?;
        for (route, path, _) in routes {
            let m = measure_on_off(
                &format!("fnhost {mode} {route}"),
                [(on.proc.pid(), &on.addr), (off.proc.pid(), &off.addr)],
                path,
                conns,
                secs,
                pairs,
                !ctx.quick,
            )?;
            record("fnhost", mode, route, m)?;
        }
    }
    // The same comparison for wasmtime serve, whose `-W timeout` is also epoch interruption:
    // how much of the cost is the mechanism rather than fnhost's use of it.
    if ctx.wasmtime.is_some() {
        for (route, path, wasm) in routes {
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
            let m = measure_on_off(
                &format!("wasmtime serve {route}"),
                [(on.pid(), &on_addr), (off.pid(), &off_addr)],
                path,
                conns,
                secs,
                pairs,
                true,
            )?;
            record("wasmtime serve", "fresh", route, m)?;
        }
    }
    let mut md = String::new();
    writeln!(
        md,
        "## 2b. Cost of the CPU-time timeouts (epoch interruption)\n"
    )?;
    writeln!(md, "Target: throughput with the timeout on must stay within 5% of it off (on / off ≥ 0.95). \
        Two fnhost processes serve the same manifest side by side, one with its defaults (epoch \
        interruption on: CPU-time request timeouts) and one with `--no-cpu-timeouts` (no epoch \
        interruption, no timeouts for guests that spin); wrk runs {secs} s at {conns} connections against \
        them alternately, on, off, on, off, … ({pairs} runs each{}). Medians of req/s; the individual runs \
        are in brackets, in order. *fresh* = `spin.toml` (a new instance per request); *reuse128* = \
        `spin.toml` + `instance_reuse = 128` for pi and iris. The idle process uses no CPU while the other \
        is measured. *CPU per request* is the server process's user + system time during a run \
        (`/proc/PID/stat`) over the requests it answered, median of the runs: less disturbed by wrk \
        sharing the two cores than req/s, and the difference is what the timeouts cost each request. \
        `wasmtime serve` rows: the same comparison for wasmtime-cli 48 with `-W timeout=30s` (its \
        timeouts are epoch interruption too) against no timeout, a new instance per request.\n",
        if ctx.quick { "" } else { ", after an unrecorded 1-second warm-up of each" })?;
    writeln!(md, "```sh")?;
    writeln!(md, "{}", fnhost_shown("spin.toml", ""))?;
    writeln!(md, "{}", fnhost_shown("spin.toml", " --no-cpu-timeouts"))?;
    writeln!(
        md,
        "# and both again with spin-reuse128.toml (spin.toml + instance_reuse = 128)"
    )?;
    if ctx.wasmtime.is_some() {
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
        wrk_shown("/ROUTE", conns, secs)
    )?;
    writeln!(md, "```\n")?;
    writeln!(md, "| server | instances | route | timeouts on: median req/s (runs) | timeouts off: median req/s (runs) | on / off | CPU µs per request, on / off (added) | within 5%? |")?;
    writeln!(md, "|---|---|---|---:|---:|---:|---:|---|")?;
    md.push_str(&md_rows);
    writeln!(md)?;
    let mut line = format!(
        "Timeout cost ({conns} connections, median req/s, on / off; target ≥ 0.95 for fnhost):"
    );
    for r in &rows {
        write!(
            line,
            " {} {} {}: {:.3}{};",
            r["server"].as_str().unwrap(),
            r["mode"].as_str().unwrap(),
            r["route"].as_str().unwrap(),
            r["on_over_off"].as_f64().unwrap(),
            match (r["server"].as_str(), r["within_5_percent"] == json!(true)) {
                (Some("fnhost"), true) => " met",
                (Some("fnhost"), false) => " MISSED",
                _ => "",
            }
        )?;
    }
    let line = line.trim_end_matches(';').to_string() + ".";
    rep.headline("timeouts", line);
    rep.json["timeout_cost"] =
        json!({"conns": conns, "seconds_per_run": secs, "runs_each": pairs, "rows": rows});
    rep.section("timeouts", md);
    Ok(())
}

/// The headline "targets" line, from what this run measured.
fn targets(ctx: &Ctx, rep: &mut Report) {
    let j = rep.json.clone();
    let mut items: Vec<String> = Vec::new();
    let verdict = |ok: bool| if ok { "**met**" } else { "**not met**" };
    // Serving ratios at 16 connections.
    let ratios: Vec<&Value> = j["serving"]["ratios"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["conns"] == json!(16)).collect())
        .unwrap_or_default();
    let pick = |key: &str| -> Vec<(String, f64)> {
        ratios
            .iter()
            .filter_map(|r| {
                r[key]
                    .as_f64()
                    .map(|v| (r["route"].as_str().unwrap_or("").to_string(), v))
            })
            .collect()
    };
    let fmt_list = |v: &[(String, f64)]| {
        v.iter()
            .map(|(r, x)| format!("{r} {x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fw = pick("fnhost_fresh_over_wasmtime_fresh");
    let rw = pick("fnhost_reuse128_over_wasmtime_default");
    if fw.is_empty() && rw.is_empty() {
        items.push(format!(
            "fnhost ≥ 1.2× wasmtime serve: not measured ({})",
            if ctx.quick {
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
    let nf = pick("native_over_fnhost_fresh");
    let nr = pick("native_over_fnhost_reuse128");
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
    let med_of = |set: &Value, algo: Option<&str>, n: u64| -> Option<f64> {
        set.as_array()?
            .iter()
            .find(|v| v["ndigits"] == json!(n) && algo.is_none_or(|a| v["algo"] == json!(a)))
            .and_then(|v| v["seconds"].as_array())
            .map(|a| median(&a.iter().filter_map(|x| x.as_f64()).collect::<Vec<_>>()))
    };
    let pi = &j["pi"];
    match (
        med_of(&pi["wasm_fnhost_http"], Some("chudnovsky"), 1_000_000),
        med_of(&pi["native"], Some("chudnovsky"), 1_000_000),
        med_of(&pi["mpmath_gmpy2"], None, 1_000_000),
    ) {
        (Some(w), Some(n), Some(m)) => items.push(format!(
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
    match (
        med_of(&pi["wasm_fnhost_http"], Some("chudnovsky"), 100_000),
        med_of(&pi["native"], Some("chudnovsky"), 100_000),
    ) {
        (Some(w), Some(n)) => items.push(format!(
            "pi v2 at 10^5 digits ≤ 0.5 s: {} — wasm via fnhost {}, native {}",
            verdict(w <= 0.5 && n <= 0.5),
            fmt_s(w),
            fmt_s(n)
        )),
        _ => items.push("pi v2 at 10^5 digits ≤ 0.5 s: not measured (--quick)".into()),
    }
    if let Some(rows) = j["timeout_cost"]["rows"].as_array() {
        let rows: Vec<&Value> = rows
            .iter()
            .filter(|r| r["server"] == json!("fnhost"))
            .collect();
        let ok = rows.iter().all(|r| r["within_5_percent"] == json!(true));
        let list = rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {:.3}",
                    r["route"].as_str().unwrap_or(""),
                    r["mode"].as_str().unwrap_or(""),
                    r["on_over_off"].as_f64().unwrap_or(f64::NAN)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        items.push(format!(
            "timeouts on within 5% of off: {}{} — on/off {list}",
            verdict(ok),
            if ctx.quick {
                " (1-second runs, indicative only)"
            } else {
                ""
            }
        ));
    }
    let line = format!("**Targets** (from this run): {}.", items.join("; "));
    rep.json["targets"] = json!(items);
    rep.headline_first("targets", line);
}

// ---------------------------------------------------------------------------------------------
// 3. Start-up
// ---------------------------------------------------------------------------------------------

fn startup(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let reps = if ctx.quick { 1 } else { 3 };
    let manifest = ctx.root.join("spin.toml");
    // Time from spawn until both routes answered 200 (pi first, then iris).
    let first_200 = |name: &str, cache: &Path| -> Result<f64> {
        let addr = free_addr()?;
        let admin = free_addr()?;
        let state = ctx.work.join(format!("state-{name}"));
        std::fs::create_dir_all(&state)?;
        let mut cmd = Command::new(&ctx.fnhost);
        cmd.current_dir(&ctx.root)
            .args(["up", "--manifest"])
            .arg(&manifest)
            .args(["--listen", &addr, "--admin-listen", &admin, "--cache-dir"])
            .arg(cache)
            .arg("--state-dir")
            .arg(&state)
            .arg("--no-watch")
            .env("FNHOST_ADMIN_TOKEN", TOKEN);
        let mut p = Proc::spawn(name, &mut cmd, ctx.work.join(format!("{name}.log")))?;
        p.wait_ok(&addr, PI_PATH, Duration::from_secs(300))?;
        let t = p.wait_ok(&addr, IRIS_PATH, Duration::from_secs(300))?;
        check_route(&addr, PI_PATH)?;
        check_route(&addr, IRIS_PATH)?;
        Ok(t.as_secs_f64())
    };
    let mut cold = Vec::new();
    for i in 0..reps {
        cold.push(first_200(
            &format!("fnhost-start-cold-{i}"),
            &ctx.work.join(format!("cache-cold-{i}")),
        )?);
    }
    let warm_cache = ctx.work.join("cache-cold-0");
    let mut warm = Vec::new();
    for i in 0..reps {
        warm.push(first_200(&format!("fnhost-start-warm-{i}"), &warm_cache)?);
    }
    let mut native = Vec::new();
    for i in 0..reps {
        let addr = free_addr()?;
        let mut cmd = Command::new(&ctx.control);
        cmd.current_dir(&ctx.root).args([
            "--listen",
            &addr,
            "--model",
            "models/iris/v1/model.json",
        ]);
        let mut p = Proc::spawn(
            "native-start",
            &mut cmd,
            ctx.work.join(format!("native-start-{i}.log")),
        )?;
        p.wait_ok(&addr, PI_PATH, Duration::from_secs(30))?;
        native.push(
            p.wait_ok(&addr, IRIS_PATH, Duration::from_secs(30))?
                .as_secs_f64(),
        );
    }
    let mut wt = Vec::new();
    if ctx.wasmtime.is_some() {
        for i in 0..reps {
            let (p, _) = start_wasmtime(
                ctx,
                &format!("wasmtime-start-{i}"),
                "pi_chudnovsky",
                true,
                &[],
                PI_PATH,
            )?;
            wt.push(p.started.elapsed().as_secs_f64());
        }
    }
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
    if ctx.wasmtime.is_some() {
        writeln!(
            md,
            "{}   # pi only, wasmtime's default cache settings",
            wasmtime_shown("pi_chudnovsky", true, &[])
        )?;
    }
    writeln!(md, "```\n")?;
    writeln!(
        md,
        "| server | cache | first 200 on both routes (median) | min | max |"
    )?;
    writeln!(md, "|---|---|---:|---:|---:|")?;
    let row = |md: &mut String, s: &str, c: &str, v: &[f64]| -> Result<()> {
        writeln!(
            md,
            "| {s} | {c} | {} | {} | {} |",
            fmt_s(median(v)),
            fmt_s(v.iter().copied().fold(f64::MAX, f64::min)),
            fmt_s(v.iter().copied().fold(0.0, f64::max))
        )?;
        Ok(())
    };
    row(&mut md, "fnhost", "cold", &cold)?;
    row(&mut md, "fnhost", "warm", &warm)?;
    row(&mut md, "native-control", "—", &native)?;
    if !wt.is_empty() {
        row(
            &mut md,
            "wasmtime serve (pi only, first 200 on pi)",
            "wasmtime default",
            &wt,
        )?;
    }
    writeln!(md)?;
    rep.headline(
        "startup",
        format!(
            "Start-up to first 200 on both routes (median): fnhost cold cache {}, warm cache {}; native-control {}.",
            fmt_s(median(&cold)),
            fmt_s(median(&warm)),
            fmt_s(median(&native))
        ),
    );
    rep.json["startup"] = json!({"fnhost_cold_s": cold, "fnhost_warm_s": warm, "native_s": native, "wasmtime_serve_pi_s": wt});
    rep.section("startup", md);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. Live update under load
// ---------------------------------------------------------------------------------------------

fn sha8(path: &Path) -> Result<String> {
    let out = output(Command::new("sha256sum").arg(path))?;
    Ok(out.split_whitespace().next().unwrap_or("")[..8].to_string())
}

fn live_update(ctx: &Ctx, rep: &mut Report) -> Result<()> {
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
            let v = format!("pi@{}", sha8(&p)?);
            Ok((p, v))
        })
        .collect::<Result<_>>()?;
    check_route(&host.addr, PI_PATH)?;
    let url = format!("http://{}{PI_PATH}", host.addr);
    let mut wrk_child = wrk_cmd(&url, conns, secs);
    eprintln!("$ {} &", crate::shown(&wrk_child));
    let wrk_child = wrk_child
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let wrk_started = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let mut admin_ms = Vec::new();
    let mut visible_ms = Vec::new();
    let mut failures = Vec::new();
    for i in 0..swaps {
        let (path, version) = &versions[i % 2];
        let q = format!("/v1/components/pi/deploy?path={}", path.display());
        let t = Instant::now();
        let r = http(
            &host.admin,
            "POST",
            &q,
            Some(TOKEN),
            Duration::from_secs(120),
        )?;
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
            let r = http(
                &host.addr,
                "GET",
                "/api/v0/pi?ndigits=10",
                None,
                Duration::from_secs(30),
            )?;
            if r.status == 200 && r.header("fnhost-version") == Some(version.as_str()) {
                check_pi_reply(&r, 10)?;
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
    let out = wrk_child.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    ensure!(out.status.success(), "wrk failed: {text}");
    let w = parse_wrk(&text)?;
    check_route(&host.addr, PI_PATH)?;
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
    let mut md = String::new();
    writeln!(md, "## 4. Live update under load\n")?;
    writeln!(md, "fnhost serving `spin.toml`; wrk runs {secs} s against pi v2 (`{PI_PATH}`, {conns} connections) \
        while, from second 1, {swaps} swaps alternate `pi_picrunch.wasm` (v1) and `pi_chudnovsky.wasm` (v2) \
        through the admin API, {gap_ms} ms apart. After each admin call returns, `GET /api/v0/pi?ndigits=10` \
        is polled until the `fnhost-version` header names the new version (`pi@<first 8 hex of sha256>`). \
        The first deploy of v1 compiles it (cold cache); later swaps find both versions in the cache.\n")?;
    writeln!(md, "```sh\n{}", fnhost_shown("spin.toml", ""))?;
    writeln!(md, "{}", wrk_shown(PI_PATH, conns, secs))?;
    writeln!(md, "curl -X POST -H 'Authorization: Bearer …' 'http://$ADMIN/v1/components/pi/deploy?path=$ROOT/target/wasm32-wasip2/release/pi_picrunch.wasm'   # then pi_chudnovsky.wasm, …")?;
    writeln!(md, "```\n")?;
    writeln!(md, "| req/s | p50 | p99 | requests | non-2xx | socket errors | swaps | admin call (median / max) | admin return → new version answers (median / max) |")?;
    writeln!(md, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|")?;
    let mx = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    writeln!(md, "| {:.0} | {} | {} | {} | {} | {} | {} of {swaps} | {:.1} / {:.1} ms | {:.2} / {:.2} ms |\n",
        w.rps, fmt_ms(w.p50_ms), fmt_ms(w.p99_ms), w.requests, w.non2xx, w.socket_errors, visible_ms.len(),
        median(&admin_ms), mx(&admin_ms), median(&visible_ms), mx(&visible_ms))?;
    if !failures.is_empty() {
        writeln!(md, "Problems: {}\n", failures.join("; "))?;
    }
    rep.headline(
        "live",
        format!(
            "Live update: {} swaps of {swaps} under {conns}-connection load: {:.0} req/s, {} non-2xx, {} socket errors; new version answering {:.2} ms (median, max {:.2} ms) after the admin call returned.",
            visible_ms.len(),
            w.rps,
            w.non2xx,
            w.socket_errors,
            median(&visible_ms),
            visible_ms.iter().copied().fold(0.0, f64::max)
        ),
    );
    rep.json["live_update"] = json!({"wrk": w.json(), "seconds": secs, "conns": conns, "swaps": swaps,
        "admin_call_ms": admin_ms, "visible_after_return_ms": visible_ms, "swaps_done_at_s": swaps_done_at, "failures": failures});
    rep.section("live", md);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. Per-instance cost
// ---------------------------------------------------------------------------------------------

/// Sum and count of a histogram over all label sets whose labels contain `filter`.
fn histogram_sum_count(metrics: &str, name: &str, filter: &str) -> (f64, f64) {
    let (mut sum, mut count) = (0.0, 0.0);
    for line in metrics.lines() {
        let Some((key, val)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(v) = val.parse::<f64>() else { continue };
        if !key.contains(filter) {
            continue;
        }
        if key.starts_with(&format!("{name}_sum")) {
            sum += v;
        } else if key.starts_with(&format!("{name}_count")) {
            count += v;
        }
    }
    (sum, count)
}

fn per_instance(ctx: &Ctx, rep: &mut Report) -> Result<()> {
    let (k, sleep_ms, load_secs) = if ctx.quick {
        (16usize, 1500u64, 2u32)
    } else {
        (64, 4000, 5)
    };
    let root = ctx.root.display().to_string();
    let manifest_text = format!(
        r#"spin_manifest_version = 2
[application]
name = "bench-instances"
[application.tool.fnhost]
request_timeout = "30s"
memory_limit = "128MiB"
max_concurrent_requests = {max_conc}
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[[trigger.http]]
route = "/api/v01/classify"
component = "iris"
[[trigger.http]]
route = "/faults/..."
component = "faults"
[component.pi]
source = "{root}/target/wasm32-wasip2/release/pi_chudnovsky.wasm"
[component.iris]
source = "{root}/target/wasm32-wasip2/release/iris.wasm"
files = [{{ source = "{root}/models/iris/v1", destination = "/model" }}]
[component.faults]
source = "{root}/target/wasm32-wasip2/release/test_faults.wasm"
"#,
        max_conc = 2 * k
    );
    let manifest = write_manifest(ctx, "instances.toml", &manifest_text)?;
    let cache = ctx.work.join("cache-instances");
    let mut results = Vec::new();
    for pooling in [true, false] {
        let name = if pooling { "pooling" } else { "no-pooling" };
        let extra: &[&str] = if pooling { &[] } else { &["--no-pooling"] };
        let host = Fnhost::start(
            ctx,
            &format!("fnhost-inst-{name}"),
            &manifest,
            &cache,
            extra,
        )?;
        // Memory per concurrent instance first, in the fresh process: K requests that sleep in the guest.
        let ok = http(
            &host.addr,
            "GET",
            "/faults/sleep?ms=1",
            None,
            Duration::from_secs(30),
        )?;
        ensure!(
            ok.status == 200,
            "faults sleep: {} {}",
            ok.status,
            ok.text()
        );
        std::thread::sleep(Duration::from_millis(500));
        let idle = host.proc.status_kib("VmRSS")?;
        let addr = host.addr.clone();
        let handles: Vec<_> = (0..k)
            .map(|_| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    http(
                        &addr,
                        "GET",
                        &format!("/faults/sleep?ms={sleep_ms}"),
                        None,
                        Duration::from_secs(60),
                    )
                    .map(|r| r.status)
                })
            })
            .collect();
        // Sample RSS and the in-flight gauge while the requests sleep.
        std::thread::sleep(Duration::from_millis(sleep_ms / 4));
        let mut loaded = 0;
        let mut in_flight = 0.0f64;
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(sleep_ms / 2) {
            loaded = loaded.max(host.proc.status_kib("VmRSS")?);
            let m = host.metrics()?;
            let f: f64 = m
                .lines()
                .filter(|l| l.starts_with("fnhost_requests_in_flight"))
                .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
                .sum();
            in_flight = in_flight.max(f);
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut statuses = Vec::new();
        for h in handles {
            statuses.push(h.join().map_err(|_| anyhow!("client thread panicked"))??);
        }
        ensure!(
            statuses.iter().all(|&s| s == 200),
            "{name}: sleeping requests answered {statuses:?}"
        );
        let after = host.proc.status_kib("VmRSS")?;
        let mut inst = serde_json::Map::new();
        for (label, path) in [("iris", IRIS_PATH), ("pi", PI_PATH)] {
            check_route(&host.addr, path)?;
            let before = host.metrics()?;
            let w = wrk(&format!("http://{}{path}", host.addr), 16, load_secs)?;
            ensure!(
                w.non2xx == 0 && w.socket_errors == 0,
                "{name} {label}: {} non-2xx, {} socket errors",
                w.non2xx,
                w.socket_errors
            );
            let after = host.metrics()?;
            // The histogram has no component label: each delta covers one route's run only.
            let filter = "";
            let (s0, c0) =
                histogram_sum_count(&before, "fnhost_instantiation_duration_seconds", filter);
            let (s1, c1) =
                histogram_sum_count(&after, "fnhost_instantiation_duration_seconds", filter);
            ensure!(
                c1 > c0,
                "{name}: no instantiations of {label} counted in /metrics:\n{}",
                after
                    .lines()
                    .filter(|l| l.contains("instantiation"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            inst.insert(label.into(), json!({"mean_us": (s1 - s0) / (c1 - c0) * 1e6, "count": (c1 - c0) as u64, "req_per_s": w.rps}));
        }
        let per = (loaded as f64 - idle as f64) / k as f64;
        results.push(json!({"allocator": name, "instantiation": inst, "concurrent": k, "sleep_ms": sleep_ms,
            "idle_rss_kib": idle, "loaded_rss_kib": loaded, "rss_after_kib": after, "max_in_flight_seen": in_flight as u64,
            "per_instance_kib": per}));
        drop(host);
    }
    let mut md = String::new();
    writeln!(md, "## 5. Per-instance cost\n")?;
    writeln!(md, "*Instantiation*: mean of fnhost's `fnhost_instantiation_duration_seconds` histogram \
        (sum/count, delta over a {load_secs}-second wrk run with 16 connections on the route; every \
        request gets a fresh instance). *Memory per concurrent instance*: measured first, in a freshly \
        started fnhost (after one warm-up request), as its RSS (`VmRSS`, \
        highest sample) while {k} requests to the test-faults component's `/sleep?ms={sleep_ms}` are \
        in flight, minus its RSS when idle just before, divided by {k}. Manifest: pi, iris and \
        test-faults (on `/faults/...`) with the spin.toml limits (128 MiB memory limit) and `max_concurrent_requests = {}` so that all \
        {k} run at once (the in-flight gauge column shows how many fnhost counted). With the pooling \
        allocator, memory slots stay resident after use, which is why its idle RSS is higher.\n", 2 * k)?;
    writeln!(
        md,
        "```sh\n{}   # and the same with --no-pooling",
        fnhost_shown("target/…/instances.toml", "")
    )?;
    writeln!(
        md,
        "{}",
        wrk_shown(
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
    for r in &results {
        writeln!(
            md,
            "| {} | {:.1} µs (n={}) | {:.1} µs (n={}) | {:.1} MiB | {:.1} MiB | {:.0} KiB | {} |",
            r["allocator"].as_str().unwrap(),
            r["instantiation"]["iris"]["mean_us"].as_f64().unwrap(),
            r["instantiation"]["iris"]["count"],
            r["instantiation"]["pi"]["mean_us"].as_f64().unwrap(),
            r["instantiation"]["pi"]["count"],
            r["idle_rss_kib"].as_f64().unwrap() / 1024.0,
            r["loaded_rss_kib"].as_f64().unwrap() / 1024.0,
            r["per_instance_kib"].as_f64().unwrap(),
            r["max_in_flight_seen"]
        )?;
    }
    writeln!(md)?;
    let mut line = String::from("Per instance:");
    for r in &results {
        write!(
            line,
            " {}: instantiation {:.1} µs (iris) / {:.1} µs (pi), {:.0} KiB RSS per concurrent instance;",
            r["allocator"].as_str().unwrap_or(""),
            r["instantiation"]["iris"]["mean_us"].as_f64().unwrap_or(f64::NAN),
            r["instantiation"]["pi"]["mean_us"].as_f64().unwrap_or(f64::NAN),
            r["per_instance_kib"].as_f64().unwrap_or(f64::NAN)
        )?;
    }
    let line = line.trim_end_matches(';').to_string() + ".";
    rep.headline("instances", line);
    rep.json["per_instance"] = json!({"manifest": manifest_text, "runs": results});
    rep.section("instances", md);
    Ok(())
}
