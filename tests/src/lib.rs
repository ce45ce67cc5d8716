//! The end-to-end test harness: start the real `fnhost` binary on free loopback ports with a
//! manifest written into a temporary directory, talk HTTP to it, stop it by PID.
//!
//! `cargo xtask test` builds the host (`target/release/fnhost`) and every component
//! (`target/wasm32-wasip2/release/*.wasm`) before these tests run. Processes, HTTP, temporary
//! directories and the static file server come from `devkit` (shared with xtask); this crate
//! adds what is fnhost's: how a host is started, its admin token, its error bodies, the pi
//! reference digits. Every `Host` is stopped and reaped when dropped, and its temporary
//! directory removed, so a failing test leaves nothing running; a host that fails to start
//! shows its log.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use devkit::process::Server;

pub use devkit::http::Client;
pub use devkit::net::free_port;
pub use devkit::static_server::StaticServer;
pub use devkit::workspace::root;
use devkit::workspace::target_dir;
pub use devkit::{wait_until, TempDir};

pub const TOKEN: &str = "e2e-admin-token-0123456789abcdef";
/// The compiled-cache signing key of every host the tests start: tests that share a cache
/// directory (the 25 MB Python and model components) then share its entries, as replicas
/// sharing a cache volume do; without it each state directory has its own key.
pub const CACHE_KEY: &str = "e2e-shared-compiled-cache-key-0123456789";

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

/// A compiled-module cache in the target directory named `name`, holding `components`
/// (component id → module file) once the first caller returns: large modules are compiled
/// once per test run, not once per host.
///
/// Some modules take a core most of a minute to compile (`onnx_model.wasm`: 16 MB of tract's
/// operators; a 25 MB Python component), longer than [`Host::start`] waits for a host to
/// answer, and every test compiling them at once would take several. So the caller starts one
/// host on this cache, waits up to ten minutes for it to answer, and stops it; the tests then
/// load the compiled modules from it (entries are keyed by module digest and engine, and signed
/// with [`CACHE_KEY`], like any fnhost cache). Call it once per test process (behind a
/// `OnceLock`): later runs find the cache filled.
pub fn compiled_cache(name: &str, components: &[(&str, PathBuf)]) -> PathBuf {
    let cache = target_dir().join(name);
    let dir = TempDir::new("compile");
    let mut manifest =
        String::from("spin_manifest_version = 2\n[application]\nname = \"compile\"\n");
    for (id, module) in components {
        let file = format!("{id}.wasm");
        dir.copy_in(module, &file);
        manifest.push_str(&format!(
            "[[trigger.http]]\nroute = \"/{id}\"\ncomponent = \"{id}\"\n\
             [component.{id}]\nsource = \"{file}\"\n"
        ));
    }
    dir.write("spin.toml", &manifest);
    let mut start = Start::new(dir.path());
    start.cache_dir = Some(&cache);
    start.ready_timeout = Duration::from_secs(600);
    let began = std::time::Instant::now();
    let host = Host::try_start(start)
        .unwrap_or_else(|e| panic!("fnhost did not compile {name} within 10 minutes: {e}"));
    drop(host);
    eprintln!("compiled into {} in {:?}", cache.display(), began.elapsed());
    cache
}

/// The compiled-module cache for hosts that serve `onnx_model.wasm` (see [`compiled_cache`]).
/// The module `fnhost new onnx-model` writes is the same file, so it hits the same entry.
pub fn onnx_compiled_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        compiled_cache(
            "e2e-onnx-cache",
            &[("onnx", wasm("onnx_model")), ("iris", wasm("iris"))],
        )
    })
}

/// A running fnhost.
pub struct Host {
    server: Server,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
    pub agent: Client,
}

/// How to start a host.
pub struct Start<'a> {
    pub dir: &'a Path,
    pub manifest: &'a str,
    pub cache_dir: Option<&'a Path>,
    pub extra_args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// How long the host may take to load its components and answer /healthz.
    pub ready_timeout: Duration,
}

impl<'a> Start<'a> {
    pub fn new(dir: &'a Path) -> Start<'a> {
        Start {
            dir,
            manifest: "spin.toml",
            cache_dir: None,
            extra_args: vec![],
            env: vec![],
            ready_timeout: Duration::from_secs(60),
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
        let [addr, admin] = devkit::net::free_addrs::<2>();
        let log = opts.dir.join(format!("fnhost-{}.log", addr.port()));
        let cache = opts
            .cache_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.dir.join("cache"));
        let mut cmd = std::process::Command::new(fnhost_bin());
        cmd.current_dir(opts.dir)
            .args(["up", "--manifest", opts.manifest])
            .args(["--listen", &addr.to_string()])
            .args(["--admin-listen", &admin.to_string()])
            .arg("--cache-dir")
            .arg(&cache)
            .arg("--state-dir")
            .arg(opts.dir.join("state"))
            .args(&opts.extra_args)
            .env("FNHOST_ADMIN_TOKEN", TOKEN)
            .env("FNHOST_CACHE_KEY", CACHE_KEY)
            .env_remove("RUST_BACKTRACE")
            .envs(opts.env.iter().map(|(k, v)| (k, v)));
        let mut server = Server::spawn("fnhost", &mut cmd, &log)
            .map_err(|e| format!("spawning fnhost: {e:#}"))?;
        server
            .wait_http_ok(&addr.to_string(), "/healthz", opts.ready_timeout)
            .map_err(|e| format!("{e:#}"))?;
        Ok(Host {
            server,
            addr,
            admin,
            log,
            agent: Client::new(Duration::from_secs(120)),
        })
    }

    pub fn pid(&self) -> u32 {
        self.server.pid()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn log_text(&self) -> String {
        self.server.log_text()
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
    pub fn terminate(self) -> std::process::ExitStatus {
        self.server
            .terminate(Duration::from_secs(40))
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Resident memory of the host process in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        self.server.rss_kib().unwrap()
    }

    /// CPU time the host process has used so far (all threads).
    pub fn cpu_time(&self) -> Duration {
        self.server.cpu_time().unwrap()
    }

    /// Minor page faults the host process has taken so far (all threads).
    /// CPU time the host's threads named `name` have used so far (see devkit).
    pub fn thread_cpu_time(&self, name: &str) -> Duration {
        self.server
            .thread_cpu_time(name)
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    pub fn minor_faults(&self) -> u64 {
        self.server.minor_faults().unwrap()
    }

    /// The value of an unlabelled metric (`fnhost_requests_in_flight`), from the admin API.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.admin("GET", "/metrics", None).text();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
    }
}

/// A response, whatever its status, with the accessors the tests assert on.
#[derive(Debug)]
pub struct Reply(devkit::http::Response);

impl Deref for Reply {
    type Target = devkit::http::Response;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
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
    agent: &Client,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    Reply(
        agent
            .request(method, url, headers, body)
            .unwrap_or_else(|e| panic!("{e:#}")),
    )
}

/// Like `send`, but a transport error (connection cut, timeout, truncated body) is an `Err`.
pub fn try_send(agent: &Client, method: &str, url: &str) -> Result<Reply, String> {
    agent
        .request(method, url, &[], None)
        .map(Reply)
        .map_err(|e| format!("{e:#}"))
}

/// A finished command's stdout followed by its stderr, as text (for assertions and messages).
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The first `n` decimals of pi after "3.", from the reference file the pi tests verify.
pub fn pi_decimals(n: usize) -> String {
    let all = std::fs::read_to_string(root().join("functions/pi/core/tests/data/pi-1m.txt"))
        .expect("pi reference digits");
    all[..n].to_string()
}

/// Writes raw bytes to the server and returns what it answers (until it closes or `timeout`):
/// for requests no HTTP client would send.
pub fn raw(addr: SocketAddr, request: &[u8], timeout: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(timeout)).unwrap();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}
