//! The end-to-end test harness: start the real `fnhost` binary on free loopback ports with a
//! manifest written into a temporary directory, talk HTTP to it, stop it by PID.
//!
//! `cargo xtask test` builds the host (`target/release/fnhost`) and every component
//! (`target/wasm32-wasip2/release/*.wasm`) before these tests run. Every `Host` is killed and
//! reaped when dropped, and its temporary directory removed, so a failing test leaves nothing
//! running.

use std::io::Read;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const TOKEN: &str = "e2e-admin-token-0123456789abcdef";

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

pub fn fnhost_bin() -> PathBuf {
    let p = target_dir().join("release/fnhost");
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask test` (it builds the host first)",
        p.display()
    );
    p
}

/// A built component, e.g. `wasm("pi_chudnovsky")`.
pub fn wasm(name: &str) -> PathBuf {
    let p = target_dir().join(format!("wasm32-wasip2/release/{name}.wasm"));
    assert!(
        p.is_file(),
        "{} is missing: run `cargo xtask test` (it builds the components first)",
        p.display()
    );
    p
}

/// A temporary directory, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "fnhost-e2e-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }
    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap();
        p
    }
    /// Copies a file in (atomically: temp name, then rename, as a deployment tool would).
    pub fn copy_in(&self, from: &Path, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let tmp = p.with_extension("partial");
        std::fs::copy(from, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        std::fs::rename(&tmp, &p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running fnhost.
pub struct Host {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
    pub agent: ureq::Agent,
}

/// How to start a host.
pub struct Start<'a> {
    pub dir: &'a Path,
    pub manifest: &'a str,
    pub cache_dir: Option<&'a Path>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl<'a> Start<'a> {
    pub fn new(dir: &'a Path) -> Start<'a> {
        Start {
            dir,
            manifest: "spin.toml",
            cache_dir: None,
            extra_args: vec![],
            env: vec![],
        }
    }
}

impl Host {
    /// Starts fnhost in `dir` serving `dir/spin.toml` and waits until it answers /healthz.
    pub fn start(dir: &Path) -> Host {
        Host::try_start(Start::new(dir)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like `start`, but returns the log (and exit status) if the host fails to come up.
    pub fn try_start(opts: Start<'_>) -> Result<Host, String> {
        let port = free_port();
        let admin_port = free_port();
        let log = opts.dir.join(format!("fnhost-{port}.log"));
        let cache = opts
            .cache_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.dir.join("cache"));
        let mut cmd = Command::new(fnhost_bin());
        cmd.current_dir(opts.dir)
            .args([
                "up",
                "--manifest",
                opts.manifest,
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--admin-listen",
                &format!("127.0.0.1:{admin_port}"),
            ])
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--state-dir")
            .arg(opts.dir.join("state"))
            .args(&opts.extra_args)
            .env("FNHOST_ADMIN_TOKEN", TOKEN)
            .env_remove("RUST_BACKTRACE")
            .envs(opts.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(log.with_extension("out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().map_err(|e| format!("spawning fnhost: {e}"))?;
        let mut host = Host {
            child: Some(child),
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            admin: format!("127.0.0.1:{admin_port}").parse().unwrap(),
            log,
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(120))
                .build(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = host.child.as_mut().unwrap().try_wait().unwrap() {
                let log = host.log_text();
                host.child = None;
                return Err(format!(
                    "fnhost exited with {status} during start-up; log:\n{log}"
                ));
            }
            if TcpStream::connect(host.addr).is_ok() && host.get("/healthz").status == 200 {
                return Ok(host);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "fnhost did not answer /healthz within 60s; log:\n{}",
                    host.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("host running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Reply {
        self.request("GET", path, &[], None)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Reply {
        send(&self.agent, method, &self.url(path), headers, body)
    }

    /// An admin API call with the right token.
    pub fn admin(&self, method: &str, path: &str, body: Option<&[u8]>) -> Reply {
        let auth = format!("Bearer {TOKEN}");
        let mut headers = vec![("authorization", auth.as_str())];
        if body.is_some() {
            headers.push(("content-type", "application/wasm"));
        }
        send(
            &self.agent,
            method,
            &format!("http://{}{path}", self.admin),
            &headers,
            body,
        )
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; returns the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        unsafe_kill(child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(40);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("fnhost did not exit within 40s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Resident memory of the host process in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

/// `kill -SIG PID` for the one process this harness started.
pub fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A response, whatever its status.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The `error` text of a JSON error body.
    pub fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field in {}", self.text()))
            .to_string()
    }
}

pub fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    try_request(agent, method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Like `send`, but a transport error (connection cut, timeout, truncated body) is an `Err`.
pub fn try_send(agent: &ureq::Agent, method: &str, url: &str) -> Result<Reply, String> {
    try_request(agent, method, url, &[], None)
}

fn try_request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Reply, String> {
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = resp.header(&n).unwrap_or("").to_string();
            (n, v)
        })
        .collect();
    let mut body = Vec::new();
    resp.into_reader()
        .take(512 << 20)
        .read_to_end(&mut body)
        .map_err(|e| format!("reading body: {e}"))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Polls `f` every 50 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The first `n` decimals of pi after "3.", from the reference file the pi tests verify.
pub fn pi_decimals(n: usize) -> String {
    let all = std::fs::read_to_string(root().join("functions/pi/core/tests/data/pi-1m.txt"))
        .expect("pi reference digits");
    all[..n].to_string()
}

/// Writes raw bytes to the server and returns what it answers (until it closes or `timeout`).
pub fn raw(addr: SocketAddr, request: &[u8], timeout: Duration) -> String {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// A static file server for one directory on 127.0.0.1; counts requests; stops when dropped.
pub struct StaticServer {
    pub port: u16,
    pub hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StaticServer {
    pub fn start(root: PathBuf) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (hits, stop) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                stream.set_nonblocking(false).unwrap();
                h.fetch_add(1, Ordering::Relaxed);
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = std::io::BufRead::read_line(&mut reader, &mut line);
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                loop {
                    let mut l = String::new();
                    if std::io::BufRead::read_line(&mut reader, &mut l).unwrap_or(0) == 0
                        || l == "\r\n"
                    {
                        break;
                    }
                }
                let mut stream = stream;
                match std::fs::read(root.join(&path)) {
                    Ok(body) => {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            body.len()
                        );
                        let _ = stream.write_all(&body);
                    }
                    Err(_) => {
                        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    }
                }
            }
        });
        StaticServer {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
