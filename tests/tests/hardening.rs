//! The host as an attacker (or an unlucky operator) tries it: limits no client can bypass, a
//! pin header outsiders cannot use, an admin API that cannot read the host, start-up and
//! watcher gaps, a compiled cache that is verified, guest output that cannot forge the log,
//! and manifest values that would have panicked.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{fnhost_bin, raw, wait_until, wasm, Host, Start, StaticServer, TempDir, TOKEN};

/// The talk's two functions, as `cargo xtask up` serves them, with a short body timeout.
fn functions(extra_limits: &str) -> TempDir {
    let dir = TempDir::new("hardening");
    dir.copy_in(&wasm("pi_chudnovsky"), "pi_chudnovsky.wasm");
    dir.copy_in(&wasm("iris"), "iris.wasm");
    let model = e2e::root().join("models/iris/v1/model.json");
    dir.copy_in(&model, "models/iris/v1/model.json");
    dir.write(
        "spin.toml",
        format!(
            r#"spin_manifest_version = 2
[application]
name = "hardening"
[application.tool.fnhost]
request_timeout = "30s"
body_read_timeout = "2s"
{extra_limits}
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[[trigger.http]]
route = "/api/v01/classify"
component = "iris"
[component.pi]
source = "pi_chudnovsky.wasm"
environment = {{ PI_MAX_NDIGITS = "1000000" }}
[component.iris]
source = "iris.wasm"
files = [{{ source = "models/iris/v1", destination = "/model" }}]
"#
        ),
    );
    dir
}

fn faults(limits: &str, component_extra: &str) -> TempDir {
    let dir = TempDir::new("hardening-faults");
    dir.copy_in(&wasm("test_faults"), "test_faults.wasm");
    dir.write(
        "spin.toml",
        format!(
            r#"spin_manifest_version = 2
[application]
name = "hardening-faults"
[application.tool.fnhost]
{limits}
[[trigger.http]]
route = "/f/..."
component = "faults"
[component.faults]
source = "test_faults.wasm"
{component_extra}
"#
        ),
    );
    dir
}

/// Opens a connection and sends `head` (no body), keeping the connection open.
fn send_head(host: &Host, head: &str) -> TcpStream {
    let mut s = TcpStream::connect(host.addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s
}

#[test]
fn sixteen_bodyless_uploads_do_not_stop_the_service() {
    let dir = functions("");
    let host = Host::start(dir.path());
    // Announce a body and never send it, on more connections than there are execution slots.
    let idle: Vec<TcpStream> = (0..16)
        .map(|_| {
            send_head(
                &host,
                "POST /api/v01/classify HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    let r = host.get("/api/v0/pi?ndigits=10");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "a normal request waited {:?} behind body-less uploads",
        t.elapsed()
    );
    // Each body-less upload gets a 408 at the body read timeout.
    let mut first = idle.into_iter().next().unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = first.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body read timeout"), "{answer}");
}

#[test]
fn aborted_requests_stop_their_guests_and_release_their_slots() {
    let dir = functions("max_concurrent_requests = 4\nmax_queued_requests = 64");
    let host = Host::start(dir.path());
    // 30 clients ask for a million digits and leave at once.
    let clients: Vec<TcpStream> = (0..30)
        .map(|_| {
            send_head(
                &host,
                "GET /api/v0/pi?ndigits=1000000 HTTP/1.1\r\nhost: x\r\n\r\n",
            )
        })
        .collect();
    std::thread::sleep(Duration::from_millis(10));
    drop(clients);
    // Never more guests than the limit, while they are being stopped.
    let storm = Instant::now();
    while storm.elapsed() < Duration::from_millis(500) {
        let running = host.metric("fnhost_requests_in_flight");
        assert!(running <= 4.0, "{running} guests running with a limit of 4");
    }
    std::thread::sleep(Duration::from_secs(2));
    let before = host.cpu_time();
    std::thread::sleep(Duration::from_secs(1));
    let used = host.cpu_time() - before;
    assert!(
        used < Duration::from_millis(200),
        "{used:?} of CPU in one second, 2 s after every client left: the guests still run"
    );
    assert_eq!(host.metric("fnhost_requests_in_flight"), 0.0);
    assert_eq!(host.metric("fnhost_requests_queued"), 0.0);
    assert_eq!(host.get("/api/v0/pi?ndigits=5").status, 200);
}

#[test]
fn a_whole_oversized_body_sent_before_reading_gets_the_413() {
    let dir = functions("");
    let host = Host::start(dir.path());
    // Python's urllib writes the whole body before it reads the answer (curl reads while it
    // sends): the host must drain the body it refused, not reset the connection.
    let script = r#"
import sys, urllib.request, urllib.error
req = urllib.request.Request(sys.argv[1], data=b"x" * (11 << 20), method="POST",
                             headers={"content-type": "application/json"})
try:
    urllib.request.urlopen(req, timeout=30)
    print("no error")
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
except Exception as e:
    print("transport error:", repr(e))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &host.url("/api/v01/classify")])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(out.starts_with("413 "), "{out}");
    assert!(out.contains("exceeds the limit of 10485760 bytes"), "{out}");
    assert_eq!(host.get("/api/v0/pi?ndigits=5").status, 200);
}

#[test]
fn queued_clients_that_leave_give_their_places_back() {
    let dir = faults(
        "request_timeout = \"10s\"\nmax_concurrent_requests = 1\nmax_queued_requests = 2",
        "",
    );
    let host = Host::start(dir.path());
    let busy = {
        let url = host.url("/f/sleep?ms=3000");
        let agent = host.agent.clone();
        std::thread::spawn(move || agent.get(&url).map(|r| r.status))
    };
    std::thread::sleep(Duration::from_millis(300));
    // Two clients queue behind it, then leave.
    let queued: Vec<TcpStream> = (0..2)
        .map(|_| send_head(&host, "GET /f/ok HTTP/1.1\r\nhost: x\r\n\r\n"))
        .collect();
    assert!(wait_until(Duration::from_secs(2), || host
        .metric("fnhost_requests_queued")
        == 2.0));
    drop(queued);
    assert!(
        wait_until(Duration::from_secs(2), || host
            .metric("fnhost_requests_queued")
            == 0.0),
        "the queue places of clients that left were not given back"
    );
    // The queue takes two new clients again (a leaked place would make them 503 "queue full").
    let waiting: Vec<_> = (0..2)
        .map(|_| {
            let url = host.url("/f/ok");
            let agent = host.agent.clone();
            std::thread::spawn(move || agent.get(&url).map(|r| (r.status, r.text())))
        })
        .collect();
    for w in waiting {
        let (status, text) = w.join().unwrap().unwrap();
        assert_eq!(status, 200, "{text}");
    }
    assert_eq!(busy.join().unwrap().unwrap(), 200);
    assert_eq!(host.metric("fnhost_requests_in_flight"), 0.0);
}

#[test]
fn a_client_that_stops_reading_is_cut_at_the_deadline() {
    let dir = faults(
        "request_timeout = \"2s\"\nmax_response_body = \"256MiB\"\nmax_concurrent_requests = 2",
        "",
    );
    let host = Host::start(dir.path());
    // A response far larger than the socket buffers, to a client that reads nothing.
    let stalled = send_head(
        &host,
        &format!("GET /f/big?bytes={} HTTP/1.1\r\nhost: x\r\n\r\n", 200 << 20),
    );
    assert!(wait_until(Duration::from_secs(2), || host
        .metric("fnhost_requests_in_flight")
        == 1.0));
    assert!(
        wait_until(Duration::from_secs(5), || host
            .metric("fnhost_requests_in_flight")
            == 0.0),
        "a client that stopped reading still holds an execution slot after the deadline"
    );
    assert!(
        host.log_text()
            .contains("response still on its way at the request deadline"),
        "{}",
        host.log_text()
    );
    drop(stalled);
}

const PIN_KEY: &str = "testers-only-0123456789";

#[test]
fn only_holders_of_the_pin_key_can_pin_and_pinned_requests_never_trip_the_guard() {
    let dir = TempDir::new("pin");
    dir.copy_in(&wasm("test_faults"), "faults_v1.wasm");
    dir.copy_in(&wasm("test_faults"), "faults_v2.wasm");
    let faults_v2 = std::fs::read(dir.join("faults_v2.wasm")).unwrap();
    dir.write(
        "spin.toml",
        format!(
            r#"spin_manifest_version = 2
[application]
name = "pin"
[[trigger.http]]
route = "/f/..."
component = "faults"
[component.faults]
source = "faults_v1.wasm"
[component.faults.tool.fnhost]
pin_key = "{PIN_KEY}"
"#
        ),
    );
    let host = Host::start(dir.path());
    // A canary at 1 % with a strict guard (the same module, labelled so it can be told apart).
    let r = host.admin(
        "POST",
        "/v1/components/faults/canary?weight=1&max_error_rate=0.1&guard_window=20&label=canary",
        Some(&faults_v2),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let label = |headers: &[(&str, &str)]| {
        host.request("GET", "/f/status?code=500", headers, None)
            .header("fnhost-version-label")
            .map(str::to_string)
    };
    // An outsider's pin header is ignored: the outsider lands on the canary only at its 1 %
    // weight (P(more than 5 of 40) < 1e-5), never on every request as a pin would make it.
    let outsider_on_canary = (0..40)
        .filter(|_| label(&[("fnhost-version-pin", "canary")]).as_deref() == Some("canary"))
        .count();
    assert!(
        outsider_on_canary <= 5,
        "an outsider pinned the canary ({outsider_on_canary} of 40 requests)"
    );
    // A tester with the key reaches it, 40 times 5xx, and the guard does not trip.
    for _ in 0..40 {
        let seen = label(&[
            ("fnhost-version-pin", "canary"),
            ("fnhost-pin-key", PIN_KEY),
        ]);
        assert_eq!(seen.as_deref(), Some("canary"));
    }
    let status = host.admin("GET", "/v1/components/faults", None).json();
    assert_eq!(status["candidate"]["weight"], 1.0, "{status}");
    assert!(status["last_guard_trip"].is_null(), "{status}");
    // The key can be rotated through the admin API (the old one then pins nothing).
    let r = host.request("POST", "/v1/components/faults/pin-key", &[], None);
    assert_eq!(r.status, 404, "the admin API is not on the public listener");
    let rotated = e2e::send(
        &host.agent,
        "POST",
        &format!("http://{}/v1/components/faults/pin-key", host.admin),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Some(b"a-new-key-for-testers-42"),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.text());
    assert_ne!(
        label(&[
            ("fnhost-version-pin", "canary"),
            ("fnhost-pin-key", PIN_KEY)
        ])
        .as_deref(),
        Some("canary")
    );
    assert_eq!(
        label(&[
            ("fnhost-version-pin", "canary"),
            ("fnhost-pin-key", "a-new-key-for-testers-42")
        ])
        .as_deref(),
        Some("canary")
    );
}

#[test]
fn the_admin_api_reads_only_regular_files_under_its_roots() {
    let dir = faults("", "");
    let fifo = dir.join("module.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let outside = TempDir::new("outside");
    outside.copy_in(&wasm("test_faults"), "elsewhere.wasm");
    let host = Host::start(dir.path());
    let cases: Vec<(String, u16, &str)> = vec![
        (
            "deploy?path=/proc/self/environ".into(),
            403,
            "only paths under the admin roots",
        ),
        (
            format!("deploy?path={}", outside.join("elsewhere.wasm").display()),
            403,
            "only paths under the admin roots",
        ),
        (
            format!("deploy?path={}", outside.join("missing.wasm").display()),
            403,
            "only paths under the admin roots",
        ),
        (
            format!("deploy?path={}/../{}", dir.path().display(), "x.wasm"),
            403,
            "only paths under the admin roots",
        ),
        (
            format!("deploy?path={}", fifo.display()),
            403,
            "only regular files",
        ),
        (
            format!(
                "deploy?mount=/:/h&path={}",
                dir.join("test_faults.wasm").display()
            ),
            403,
            "only paths under the admin roots",
        ),
    ];
    for (op, status, rule) in cases {
        let t = Instant::now();
        let r = host.admin("POST", &format!("/v1/components/faults/{op}"), None);
        assert_eq!(r.status, status, "{op}: {}", r.text());
        assert!(r.error().contains(rule), "{op}: {}", r.error());
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "{op} took {:?}",
            t.elapsed()
        );
    }
    // A module under the roots still loads.
    let r = host.admin(
        "POST",
        &format!(
            "/v1/components/faults/deploy?path={}",
            dir.join("test_faults.wasm").display()
        ),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Runs `fnhost up` to its (early) exit and returns what it printed.
fn start_failure(dir: &std::path::Path, args: &[&str], token_env: bool) -> String {
    let mut cmd = Command::new(fnhost_bin());
    cmd.current_dir(dir)
        .args(["up", "--manifest", "spin.toml", "--listen", "127.0.0.1:0"])
        .args(args)
        .env_remove("FNHOST_ADMIN_TOKEN")
        .env_remove("RUST_BACKTRACE");
    if token_env {
        cmd.env("FNHOST_ADMIN_TOKEN", TOKEN);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fnhost {args:?} did not stop");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "fnhost {args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_admin_listener_needs_tls_off_loopback_and_a_private_token_file() {
    let dir = faults("", "");
    let err = start_failure(
        dir.path(),
        &["--admin-listen", "0.0.0.0:0", "--state-dir", "state"],
        true,
    );
    assert!(err.contains("is not a loopback address"), "{err}");
    assert!(err.contains("--admin-tls-cert"), "{err}");

    // A token file others can read, or a symlink, is refused.
    let state = dir.join("state-open");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(state.join("admin-token"), "a-token-anyone-can-read-123").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        state.join("admin-token"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let err = start_failure(
        dir.path(),
        &["--admin-listen", "127.0.0.1:0", "--state-dir", "state-open"],
        false,
    );
    assert!(err.contains("readable by group or others"), "{err}");
    let linked = dir.join("state-link");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(dir.join("spin.toml"), linked.join("admin-token")).unwrap();
    let err = start_failure(
        dir.path(),
        &["--admin-listen", "127.0.0.1:0", "--state-dir", "state-link"],
        false,
    );
    assert!(err.contains("not a symlink"), "{err}");

    // A new token file is private.
    let mut child = Command::new(fnhost_bin())
        .current_dir(dir.path())
        .args(["up", "--manifest", "spin.toml", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0", "--state-dir", "fresh"])
        .env_remove("FNHOST_ADMIN_TOKEN")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let token = dir.join("fresh/admin-token");
    let created = wait_until(Duration::from_secs(60), || token.is_file());
    let _ = child.kill();
    let _ = child.wait();
    assert!(created, "no token file was written");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&token).unwrap().mode() & 0o777, 0o600);
}

#[test]
fn the_admin_api_over_tls() {
    let dir = faults("", "");
    let cert = dir.join("admin.crt");
    let key = dir.join("admin.key");
    // A private CA and a server certificate it signs, as an operator would make them.
    let ca_key = dir.join("ca.key");
    let ca = dir.join("ca.crt");
    let csr = dir.join("admin.csr");
    let ext = dir.write(
        "admin.ext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    );
    let openssl = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("openssl").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    openssl(&[
        &os("req"),
        &os("-x509"),
        &os("-newkey"),
        &os("ec"),
        &os("-pkeyopt"),
        &os("ec_paramgen_curve:P-256"),
        &os("-nodes"),
        &os("-days"),
        &os("2"),
        &os("-subj"),
        &os("/CN=fnhost test CA"),
        &os("-keyout"),
        ca_key.as_os_str(),
        &os("-out"),
        ca.as_os_str(),
    ]);
    openssl(&[
        &os("req"),
        &os("-newkey"),
        &os("ec"),
        &os("-pkeyopt"),
        &os("ec_paramgen_curve:P-256"),
        &os("-nodes"),
        &os("-subj"),
        &os("/CN=localhost"),
        &os("-keyout"),
        key.as_os_str(),
        &os("-out"),
        csr.as_os_str(),
    ]);
    openssl(&[
        &os("x509"),
        &os("-req"),
        &os("-in"),
        csr.as_os_str(),
        &os("-CA"),
        ca.as_os_str(),
        &os("-CAkey"),
        ca_key.as_os_str(),
        &os("-CAcreateserial"),
        &os("-days"),
        &os("2"),
        &os("-extfile"),
        ext.as_os_str(),
        &os("-out"),
        cert.as_os_str(),
    ]);
    let mut start = Start::new(dir.path());
    start.extra_args = vec![
        "--admin-tls-cert".into(),
        cert.display().to_string(),
        "--admin-tls-key".into(),
        key.display().to_string(),
    ];
    let host = Host::try_start(start).unwrap();
    let cli = Command::new(fnhost_bin())
        .args(["status", "--admin"])
        .arg(format!("https://localhost:{}", host.admin.port()))
        .arg("--admin-ca")
        .arg(&ca)
        .env("FNHOST_ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(String::from_utf8_lossy(&cli.stdout).contains("\"component\": \"faults\""));
    // Plain HTTP to the TLS listener gets nothing useful.
    let answer = raw(
        host.admin,
        format!("GET /v1/status HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
        Duration::from_secs(5),
    );
    assert!(!answer.contains("\"components\""), "{answer}");
}

#[test]
fn a_url_component_that_loads_late_gets_its_candidate_and_the_admin_api_can_repair_it() {
    let store = TempDir::new("late-store");
    let server = StaticServer::start(store.path().to_path_buf());
    let module = std::fs::read(wasm("pi_picrunch")).unwrap();
    let digest = sha256_hex(&module);
    let dir = TempDir::new("late");
    dir.copy_in(&wasm("pi_chudnovsky"), "pi_chudnovsky.wasm");
    dir.write(
        "spin.toml",
        format!(
            r#"spin_manifest_version = 2
[application]
name = "late"
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[[trigger.http]]
route = "/pi2"
component = "pi2"
[component.pi]
source = {{ url = "{url}", digest = "sha256:{digest}" }}
[component.pi.tool.fnhost.candidate]
source = "pi_chudnovsky.wasm"
weight = 10
label = "v2"
[component.pi2]
source = {{ url = "{url2}", digest = "sha256:{digest}" }}
"#,
            url = server.url("pi_picrunch.wasm"),
            url2 = server.url("missing.wasm"),
        ),
    );
    let host = Host::start(dir.path());
    assert_eq!(host.get("/readyz").status, 503);
    // The module appears in the store: the retry loads it, then the manifest's candidate.
    store.write("pi_picrunch.wasm", &module);
    assert!(
        wait_until(Duration::from_secs(20), || {
            let s = host.admin("GET", "/v1/components/pi", None).json();
            s["candidate"]["label"] == "v2"
        }),
        "{}",
        host.log_text()
    );
    // pi2 never loads by itself; an operator repairs it through the admin API.
    let r = host.admin(
        "POST",
        &format!(
            "/v1/components/pi2/deploy?path={}",
            dir.join("pi_chudnovsky.wasm").display()
        ),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(host.get("/pi2?ndigits=3").status, 200);
    assert_eq!(host.get("/readyz").status, 200);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn a_half_applied_manifest_change_is_not_applied_twice() {
    let dir = TempDir::new("half");
    dir.copy_in(&wasm("pi_picrunch"), "pi_v1.wasm");
    dir.copy_in(&wasm("pi_chudnovsky"), "pi_v2.wasm");
    dir.write("broken.wasm", b"\0asm\x0d\0\x01\0 not really");
    let manifest = |source: &str, candidate: &str, comment: &str| {
        format!(
            "# {comment}\nspin_manifest_version = 2\n[application]\nname = \"half\"\n[application.tool.fnhost]\nrequest_timeout = \"30s\"\n[[trigger.http]]\nroute = \"/api/v0/pi\"\ncomponent = \"pi\"\n[component.pi]\nsource = \"{source}\"\n{candidate}"
        )
    };
    dir.write("spin.toml", manifest("pi_v1.wasm", "", "start"));
    let host = Host::start(dir.path());
    let version =
        |s: &serde_json::Value, role: &str| s[role]["version"].as_str().map(str::to_string);
    let v1 = version(
        &host.admin("GET", "/v1/components/pi", None).json(),
        "current",
    );
    // A new current version with a candidate that cannot load.
    dir.write(
        "spin.toml",
        manifest(
            "pi_v2.wasm",
            "[component.pi.tool.fnhost.candidate]\nsource = \"broken.wasm\"\nweight = 10\n",
            "change",
        ),
    );
    assert!(wait_until(Duration::from_secs(15), || host
        .log_text()
        .contains("module change not applied")));
    let after = host.admin("GET", "/v1/components/pi", None).json();
    assert_eq!(version(&after, "previous"), v1, "{after}");
    let v2 = version(&after, "current");
    assert_ne!(v2, v1);
    // An unrelated event: the current version is not deployed again (which would make the
    // previous version the current one and lose the rollback target).
    dir.write(
        "spin.toml",
        manifest(
            "pi_v2.wasm",
            "[component.pi.tool.fnhost.candidate]\nsource = \"broken.wasm\"\nweight = 10\n",
            "touched",
        ),
    );
    std::thread::sleep(Duration::from_secs(3));
    let again = host.admin("GET", "/v1/components/pi", None).json();
    assert_eq!(version(&again, "current"), v2, "{again}");
    assert_eq!(
        version(&again, "previous"),
        v1,
        "the rollback target was lost: {again}"
    );
    // Server-wide settings need a restart, and the log says so.
    dir.write(
        "spin.toml",
        manifest("pi_v2.wasm", "", "limits").replace("\"30s\"", "\"20s\""),
    );
    assert!(wait_until(Duration::from_secs(15), || host
        .log_text()
        .contains(
            "[application.tool.fnhost] changed in the manifest: it needs a restart"
        )));
}

#[test]
fn a_tampered_compiled_cache_entry_is_recompiled_never_loaded() {
    let dir = TempDir::new("cache-tamper");
    dir.copy_in(&wasm("pi_chudnovsky"), "pi.wasm");
    dir.copy_in(&wasm("test_hello_p2"), "hello.wasm");
    dir.write(
        "spin.toml",
        "spin_manifest_version = 2\n[application]\nname = \"tamper\"\n[[trigger.http]]\nroute = \"/api/v0/pi\"\ncomponent = \"pi\"\n[[trigger.http]]\nroute = \"/hello/...\"\ncomponent = \"hello\"\n[component.pi]\nsource = \"pi.wasm\"\n[component.hello]\nsource = \"hello.wasm\"\n",
    );
    let cache = dir.join("cache");
    let mut start = Start::new(dir.path());
    start.cache_dir = Some(&cache);
    let first = Host::try_start(start).unwrap();
    assert_eq!(first.get("/api/v0/pi?ndigits=3").json()["pi"], "3.141");
    drop(first);
    // Put the other module's compiled code under pi's entry: valid native code, wrong module.
    let compiled = cache.join("compiled");
    let entry = |module: &str| {
        let sha = sha256_hex(&std::fs::read(dir.join(module)).unwrap());
        std::fs::read_dir(&compiled)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&sha))
            .unwrap()
    };
    std::fs::copy(entry("hello.wasm"), entry("pi.wasm")).unwrap();
    let mut start = Start::new(dir.path());
    start.cache_dir = Some(&cache);
    let second = Host::try_start(start).unwrap();
    let r = second.get("/api/v0/pi?ndigits=3");
    assert_eq!(
        r.json()["pi"],
        "3.141",
        "pi answered with another module's code"
    );
    assert!(
        second.log_text().contains("failed verification"),
        "{}",
        second.log_text()
    );
}

#[test]
fn guest_output_is_logged_as_capped_events_that_cannot_forge_the_log() {
    let dir = faults("", "");
    let mut start = Start::new(dir.path());
    start.extra_args = vec!["--log-format".into(), "json".into()];
    let host = Host::try_start(start).unwrap();
    let r = host.get("/f/print?bytes=200000");
    assert_eq!(r.text(), "printed");
    let request_id = r.header("x-request-id").unwrap().to_string();
    assert!(wait_until(Duration::from_secs(5), || host
        .log_text()
        .contains("guest output over")));
    let log = host.log_text();
    let mut guest_lines = 0;
    let mut kept = 0;
    for line in log.lines() {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert_ne!(
            event["message"], "forged by the guest",
            "the guest wrote a log event of its own: {line}"
        );
        if event["target"] == "fnhost::guest" && event["output"].is_string() {
            guest_lines += 1;
            kept += event["output"].as_str().unwrap().len() + 1;
            assert_eq!(event["request_id"], request_id.as_str(), "{line}");
            assert_eq!(event["component"], "faults", "{line}");
            assert!(
                !event["output"].as_str().unwrap().contains('\u{1b}'),
                "{line}"
            );
        }
    }
    assert!(guest_lines > 2, "{log}");
    assert!(
        log.contains("forged by the guest") && log.contains(r"\\u{1b}[31mred"),
        "the guest's own words are kept, escaped: {log}"
    );
    // The cap counts the guest's bytes; escapes make a few logged characters longer.
    assert!(kept <= (64 << 10) + 64, "{kept} bytes of guest output kept");
}

#[test]
fn manifest_values_that_used_to_panic_are_refused_at_load() {
    for (what, limits, id, want) in [
        (
            "a timeout that overflows the clock",
            "request_timeout = \"300000000000h\"",
            "faults",
            "request_timeout",
        ),
        (
            "a component id that cannot go in a header",
            "",
            "fäults",
            "not a component id",
        ),
        (
            "any port for any scheme by omission",
            "",
            "faults",
            "has no default port",
        ),
    ] {
        let dir = faults(limits, "");
        let text = std::fs::read_to_string(dir.join("spin.toml")).unwrap();
        let text = text
            .replace("component.faults]", &format!("component.\"{id}\"]"))
            .replace("component = \"faults\"", &format!("component = \"{id}\""));
        let text = if want == "has no default port" {
            text + "allowed_outbound_hosts = [\"*://127.0.0.1\"]\n"
        } else {
            text
        };
        dir.write("spin.toml", text);
        let err = start_failure(dir.path(), &["--admin-listen", "127.0.0.1:0"], true);
        assert!(err.contains("spin.toml"), "{what}: {err}");
        assert!(err.contains(want), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}
