//! The host's foundation over real HTTP: routing, the pi contract, both wasi:http worlds,
//! traps, manifest errors at start-up, the compiled-module cache, the profiler map and graceful
//! shutdown.

use std::time::Duration;

use e2e::{pi_decimals, wasm, Host, Start, TempDir};

const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "e2e-foundation"
[application.tool.fnhost]
request_timeout = "5s"

[[trigger.http]]
route = "/api/v0/pi"
component = "pi"

[[trigger.http]]
route = "/api/..."
component = "faults"

[[trigger.http]]
route = "/p2/..."
component = "hello"

[component.pi]
source = "pi_chudnovsky.wasm"

[component.faults]
source = "test_faults.wasm"
environment = { FAULTS_VERSION = "granted-env" }

[component.hello]
source = "test_hello_p2.wasm"
"#;

fn fixture() -> TempDir {
    let dir = TempDir::new("foundation");
    dir.copy_in(&wasm("pi_chudnovsky"), "pi_chudnovsky.wasm");
    dir.copy_in(&wasm("test_faults"), "test_faults.wasm");
    dir.copy_in(&wasm("test_hello_p2"), "test_hello_p2.wasm");
    dir.write("spin.toml", MANIFEST);
    dir
}

#[test]
fn routes_exact_wildcard_most_specific_and_404() {
    let dir = fixture();
    let host = Host::start(dir.path());

    // Exact route beats the /api/... wildcard.
    let r = host.get("/api/v0/pi?ndigits=5");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["pi"], "3.14159");
    assert!(r.header("fnhost-version").unwrap().starts_with("pi@"));

    // Wildcard: anything else under /api goes to the faults component (a WASIp3 component).
    let r = host.get("/api/some/where/ok");
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    assert!(r.header("fnhost-version").unwrap().starts_with("faults@"));
    let r = host.get("/api/v0/pi/extra/ok");
    assert!(
        r.header("fnhost-version").unwrap().starts_with("faults@"),
        "a longer path is not the exact route"
    );

    // The WASIp2 component, under its own wildcard.
    let r = host.get("/p2/hello?x=1");
    assert_eq!(r.status, 200);
    assert!(
        r.text().starts_with("hello from p2 /p2/hello?x=1"),
        "{}",
        r.text()
    );

    // No route: JSON 404 naming the path.
    let r = host.get("/nothing/here");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.error(), "no route for /nothing/here");

    // Health endpoints.
    assert_eq!(host.get("/healthz").status, 200);
    assert_eq!(host.get("/readyz").json()["ready"], true);
    assert_eq!(host.get("/.well-known/spin/health").status, 200);
}

#[test]
fn pi_contract_over_http() {
    let dir = fixture();
    let host = Host::start(dir.path());
    for (query, n) in [
        ("?ndigits=0", 0usize),
        ("?ndigits=1", 1),
        ("", 22),
        ("?ndigits=99", 99),
        ("?ndigits=1000", 1000),
    ] {
        let r = host.get(&format!("/api/v0/pi{query}"));
        assert_eq!(r.status, 200, "{query}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        let want_pi = if n == 0 {
            "3".to_string()
        } else {
            format!("3.{}", pi_decimals(n))
        };
        // Exact bytes: keys in order, compact.
        assert_eq!(
            r.text(),
            format!("{{\"ndigits\":{n},\"pi\":\"{want_pi}\"}}"),
            "{query}"
        );
    }
    let r = host.get("/api/v0/pi?ndigits=99");
    assert!(
        r.json()["pi"].as_str().unwrap().ends_with("342117067"),
        "truncated, not rounded"
    );
    for bad in ["abc", "-1", "5.5", "", "1e6"] {
        let r = host.get(&format!("/api/v0/pi?ndigits={bad}"));
        assert_eq!(r.status, 400, "ndigits={bad}: {}", r.text());
        assert!(
            r.error().contains("ndigits"),
            "error names the parameter: {}",
            r.error()
        );
    }
    let r = host.get("/api/v0/pi?NDIGITS=5");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("NDIGITS"), "{}", r.error());
}

#[test]
fn trap_and_panic_give_500_and_the_host_keeps_serving() {
    let dir = fixture();
    let host = Host::start(dir.path());
    for path in ["/api/trap", "/api/panic", "/p2/trap"] {
        let r = host.get(path);
        assert_eq!(r.status, 500, "{path}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.error().contains("failed"), "{}", r.error());
        let next = host.get("/api/ok");
        assert_eq!(next.status, 200, "the request after {path}");
    }
    assert_eq!(host.get("/p2/after-trap").status, 200);
}

#[test]
fn guests_see_only_what_the_manifest_grants() {
    let dir = fixture();
    let host = Host::start(dir.path());
    let env = host.get("/api/env").json();
    assert_eq!(env["FAULTS_VERSION"], "granted-env");
    assert!(
        env.get("PATH").is_none() && env.get("HOME").is_none(),
        "host environment leaked: {env}"
    );
    let r = host.get("/api/files?path=/etc/passwd");
    assert_eq!(r.status, 404, "no filesystem was granted: {}", r.text());
    let r = host.get(&format!(
        "/api/files?path={}",
        dir.join("spin.toml").display()
    ));
    assert_eq!(r.status, 404, "host paths are invisible: {}", r.text());
}

#[test]
fn manifest_errors_stop_start_up_with_a_clear_message() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "bad toml",
            "spin_manifest_version = 2\n[application\nname=1".to_string(),
            &["spin.toml", "invalid TOML"],
        ),
        (
            "unknown component",
            MANIFEST.replace("component = \"hello\"", "component = \"nope\""),
            &[
                "spin.toml",
                "trigger.http[2].component",
                "unknown component \"nope\"",
            ],
        ),
        (
            "duplicate route",
            MANIFEST.replace("route = \"/p2/...\"", "route = \"/api/...\""),
            &["spin.toml", "duplicate route \"/api/...\""],
        ),
        (
            "missing file",
            MANIFEST.replace("test_hello_p2.wasm", "missing.wasm"),
            &[
                "spin.toml",
                "component.hello.source",
                "\"missing.wasm\" not found",
            ],
        ),
        (
            "not a component",
            MANIFEST.replace("test_hello_p2.wasm", "spin.toml"),
            &["component.hello", "not a WebAssembly component"],
        ),
    ];
    for (what, text, wants) in cases {
        let dir = fixture();
        dir.write("spin.toml", text);
        let err = match Host::try_start(Start::new(dir.path())) {
            Ok(_) => panic!("{what}: fnhost started"),
            Err(e) => e,
        };
        assert!(err.contains("exited with"), "{what}: {err}");
        for want in *wants {
            assert!(err.contains(want), "{what}: want {want:?} in\n{err}");
        }
    }
}

#[test]
fn unsupported_keys_are_warned_about_once() {
    let dir = fixture();
    dir.write(
        "spin.toml",
        MANIFEST.replace(
            "[component.hello]\n",
            "[component.hello]\nsqlite_databases = [\"default\"]\n",
        ),
    );
    let host = Host::start(dir.path());
    let log = host.log_text();
    assert_eq!(
        log.matches("component.hello.sqlite_databases: not supported by fnhost")
            .count(),
        1,
        "{log}"
    );
}

#[test]
fn restart_uses_the_compiled_cache() {
    let dir = fixture();
    let cache = dir.join("shared-cache");
    let mut start = Start::new(dir.path());
    start.cache_dir = Some(&cache);
    let first = Host::try_start(start).unwrap();
    let log_path = first.log.clone();
    assert_eq!(first.get("/api/v0/pi?ndigits=3").status, 200);
    let log = first.log_text();
    assert_eq!(
        log.matches("compiled module (cache miss)").count(),
        3,
        "{log}"
    );
    let status = first.terminate();
    assert!(
        status.success(),
        "{status}:\n{}",
        std::fs::read_to_string(&log_path).unwrap_or_default()
    );

    let mut start = Start::new(dir.path());
    start.cache_dir = Some(&cache);
    let second = Host::try_start(start).unwrap();
    assert_eq!(second.get("/api/v0/pi?ndigits=3").status, 200);
    let log = second.log_text();
    assert_eq!(
        log.matches("loaded compiled module from cache").count(),
        3,
        "{log}"
    );
    assert!(!log.contains("cache miss"), "recompiled on restart:\n{log}");
}

/// `--profile perfmap` tells `perf` the names of the guests' compiled functions, for modules
/// loaded from the compiled cache too (the usual case after the first start); without it no map
/// is written.
#[test]
fn profile_perfmap_names_the_guests_functions() {
    let dir = fixture();
    let cache = dir.join("cache");
    let map_of = |host: &Host| std::path::PathBuf::from(format!("/tmp/perf-{}.map", host.pid()));
    for profile in [false, true] {
        let mut start = Start::new(dir.path());
        start.cache_dir = Some(&cache);
        if profile {
            start.extra_args = ["--profile", "perfmap"].map(String::from).to_vec();
        }
        let host = Host::try_start(start).unwrap();
        assert_eq!(host.get("/api/v0/pi?ndigits=3").status, 200);
        let map_path = map_of(&host);
        let map = std::fs::read_to_string(&map_path);
        let _ = std::fs::remove_file(&map_path);
        if !profile {
            assert!(
                map.is_err(),
                "{} written without --profile",
                map_path.display()
            );
            continue;
        }
        assert!(
            host.log_text()
                .contains("loaded compiled module from cache"),
            "the profiled host should load from the cache:\n{}",
            host.log_text()
        );
        let map = map.unwrap_or_else(|e| panic!("{}: {e}", map_path.display()));
        // perf's map format: start address and size in hex, then the symbol.
        let named = |needle: &str| {
            map.lines().any(|line| {
                let mut fields = line.splitn(3, ' ');
                let (start, size, name) = (fields.next(), fields.next(), fields.next());
                start.is_some_and(|s| s.starts_with("0x"))
                    && size.is_some_and(|s| u64::from_str_radix(s, 16).is_ok())
                    && name.is_some_and(|n| n.contains(needle))
            })
        };
        assert!(named("pi_core::"), "no pi-core function in the map");
        assert!(named("test_faults::"), "no test-faults function in the map");
    }
}

#[test]
fn sigterm_finishes_requests_in_flight() {
    let dir = fixture();
    let host = Host::start(dir.path());
    let url = host.url("/api/sleep?ms=1500");
    let agent = host.agent.clone();
    let slow = std::thread::spawn(move || e2e::send(&agent, "GET", &url, &[], None));
    // Let the request reach the guest, then ask the host to stop.
    std::thread::sleep(Duration::from_millis(400));
    let status = host.terminate();
    let reply = slow.join().unwrap();
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "slept"),
        "the in-flight request finished"
    );
    assert!(status.success(), "clean exit: {status}");
}

/// CPU time of the host's two serving threads.
fn lane_cpu(host: &Host) -> [Duration; 2] {
    ["fnhost-lane-0", "fnhost-lane-1"].map(|lane| host.thread_cpu_time(lane))
}

/// Each lane's share of the CPU the lanes used since `before`.
fn lane_shares(host: &Host, before: [Duration; 2]) -> [f64; 2] {
    let after = lane_cpu(host);
    let used = [0, 1].map(|i| (after[i] - before[i]).as_secs_f64());
    let total = used[0] + used[1];
    used.map(|u| u / total)
}

#[test]
fn a_connection_stays_on_one_serving_thread_and_connections_spread_over_them() {
    let dir = fixture();
    let mut s = Start::new(dir.path());
    s.extra_args = ["--threads", "2"].map(String::from).to_vec();
    let host = Host::try_start(s).unwrap();
    let url = host.url("/api/v0/pi?ndigits=2000");
    assert_eq!(host.get("/api/v0/pi?ndigits=2000").status, 200);

    // One keep-alive connection: its requests, their instances and answers all run on the
    // thread that accepted it, none handed to the other.
    let agent = e2e::Client::new(Duration::from_secs(30));
    let before = lane_cpu(&host);
    for _ in 0..150 {
        assert_eq!(e2e::send(&agent, "GET", &url, &[], None).status, 200);
    }
    let shares = lane_shares(&host, before);
    let busy = shares[0].max(shares[1]);
    assert!(
        busy > 0.97,
        "one connection's requests ran on both serving threads: {shares:?} of their CPU"
    );

    // Eight connections opened at once are shared out evenly, whichever thread wakes first.
    let before = lane_cpu(&host);
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let agent = e2e::Client::new(Duration::from_secs(30));
                for _ in 0..60 {
                    assert_eq!(e2e::send(&agent, "GET", &url, &[], None).status, 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let shares = lane_shares(&host, before);
    assert!(
        shares.iter().all(|&s| s > 0.25),
        "eight connections were not spread over both serving threads: {shares:?} of their CPU"
    );
    host.terminate();
}

#[test]
fn outgoing_http_only_to_allowed_hosts() {
    let files = TempDir::new("upstream");
    files.write("hello.txt", "hello");
    let upstream = e2e::StaticServer::start(files.path().to_path_buf());
    let dir = fixture();
    dir.write(
        "spin.toml",
        format!(
            "{MANIFEST}\n[[trigger.http]]\nroute = \"/net/...\"\ncomponent = \"net\"\n[component.net]\nsource = \"test_faults.wasm\"\nallowed_outbound_hosts = [\"http://127.0.0.1:{}\"]\n",
            upstream.port
        ),
    );
    let host = Host::start(dir.path());
    let url = upstream.url("hello.txt");
    let allowed = host.get(&format!("/net/fetch?url={url}"));
    assert_eq!(allowed.status, 200, "{}", allowed.text());
    assert_eq!(allowed.json()["upstream_status"], 200);
    let denied = host.get(&format!("/api/fetch?url={url}"));
    assert_eq!(
        denied.status,
        502,
        "no allowed_outbound_hosts: {}",
        denied.text()
    );
    assert!(
        denied.error().contains("HttpRequestDenied"),
        "{}",
        denied.error()
    );
    let other_port = host.get(&format!(
        "/net/fetch?url=http://127.0.0.1:{}/x",
        e2e::free_port()
    ));
    assert!(
        other_port.error().contains("HttpRequestDenied"),
        "{}",
        other_port.text()
    );
    assert_eq!(
        upstream.hits.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "denied requests never left the host"
    );
}

/// Instances the host has created so far (all components).
fn instantiations(host: &Host) -> u64 {
    host.metric("fnhost_instantiation_duration_seconds_count") as u64
}

#[test]
fn a_wasip2_instance_is_reused_under_concurrent_requests() {
    // wasi:http@0.2 components (componentize-py's plain builds, spin-sdk 5, `wasmtime serve`
    // examples) opt into reuse as WASIp3 ones do; their handler is synchronous, so one
    // instance takes its requests one after another.
    let dir = fixture();
    dir.write(
        "spin.toml",
        format!("{MANIFEST}\n[component.hello.tool.fnhost]\ninstance_reuse = 50\n"),
    );
    let host = Host::start(dir.path());
    let before = instantiations(&host);
    std::thread::scope(|s| {
        for t in 0..8 {
            let host = &host;
            s.spawn(move || {
                for i in 0..10 {
                    let r = host.get(&format!("/p2/t{t}?i={i}"));
                    assert_eq!(r.status, 200, "{}", r.text());
                    assert_eq!(r.text(), format!("hello from p2 /p2/t{t}?i={i}"));
                }
            });
        }
    });
    let used = instantiations(&host) - before;
    assert!(
        (2..=16).contains(&used),
        "80 requests, 8 at a time, at most 50 per instance: {used} instantiations"
    );
}

#[test]
fn instance_reuse_is_opt_in() {
    let dir = fixture();
    dir.write(
        "spin.toml",
        format!("{MANIFEST}\n[component.faults.tool.fnhost]\ninstance_reuse = 50\n"),
    );
    let host = Host::start(dir.path());
    for _ in 0..40 {
        assert_eq!(host.get("/api/ok").status, 200);
    }
    assert!(
        instantiations(&host) <= 2,
        "reused: {} instantiations for 40 requests",
        instantiations(&host)
    );
    for _ in 0..10 {
        assert_eq!(host.get("/api/v0/pi?ndigits=3").status, 200);
    }
    assert!(
        instantiations(&host) >= 10,
        "pi keeps a fresh instance per request"
    );
}
