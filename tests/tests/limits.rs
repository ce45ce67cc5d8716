//! Limits, faults and observability against the real binary: timeouts, memory caps, a long
//! computation that must not starve other requests, body and header limits, the concurrency
//! limit with its bounded queue, slow and malformed clients, exact metrics and JSON logs with
//! request ids.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{raw, try_send, wasm, Host, Start, TempDir};
use sha2::{Digest, Sha256};

const MANIFEST: &str = r#"
spin_manifest_version = 2
[application]
name = "e2e-limits"
[application.tool.fnhost]
request_timeout = "2s"
max_request_body = "1MiB"
max_response_body = "2MiB"
max_concurrent_requests = 4
max_queued_requests = 8
header_read_timeout = "2s"
max_header_bytes = "16KiB"
max_connections = 100

[[trigger.http]]
route = "/f/..."
component = "faults"

[component.faults]
source = "test_faults.wasm"

[component.faults.tool.fnhost]
memory_limit = "32MiB"
"#;

fn start(extra: &[&str]) -> (TempDir, Host) {
    let dir = TempDir::new("limits");
    dir.copy_in(&wasm("test_faults"), "test_faults.wasm");
    dir.write("spin.toml", MANIFEST);
    let mut s = Start::new(dir.path());
    s.extra_args = extra.iter().map(|a| a.to_string()).collect();
    let host = Host::try_start(s).unwrap();
    (dir, host)
}

#[test]
fn an_endless_loop_is_cut_at_the_timeout_and_the_next_request_succeeds() {
    let (_dir, host) = start(&[]);
    for _ in 0..2 {
        let t = Instant::now();
        let r = host.get("/f/loop");
        let took = t.elapsed();
        assert_eq!(r.status, 504, "{}", r.text());
        assert!(r.error().contains("timeout"), "{}", r.error());
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
            "took {took:?}"
        );
        assert_eq!(host.get("/f/ok").status, 200);
    }
    // A guest blocked in I/O (not running wasm) is cut at the deadline too.
    let t = Instant::now();
    assert_eq!(host.get("/f/sleep?ms=60000").status, 504);
    assert!(t.elapsed() < Duration::from_millis(3500));
}

/// With the only executor thread computing a million digits of pi (about 0.6–1 s), a small
/// request is still answered within a few epoch ticks: the CPU-time deadline callback yields the
/// guest every tick (10 ms). The same host with `--no-cpu-timeouts` (no epoch interruption, so
/// no yields) makes the small request wait for the computation: the control that shows this test
/// can tell the two apart.
#[test]
fn a_long_computation_does_not_starve_other_requests() {
    let dir = TempDir::new("starvation");
    dir.copy_in(&wasm("pi_chudnovsky"), "pi_chudnovsky.wasm");
    dir.write(
        "spin.toml",
        r#"spin_manifest_version = 2
[application]
name = "e2e-starvation"
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[component.pi]
source = "pi_chudnovsky.wasm"
"#,
    );
    let cache = dir.join("cache");
    let prompt = Duration::from_millis(250);
    for yields in [true, false] {
        let mut s = Start::new(dir.path());
        s.cache_dir = Some(&cache);
        s.extra_args = ["--threads", "1"].map(String::from).to_vec();
        if !yields {
            s.extra_args.push("--no-cpu-timeouts".into());
        }
        let host = Host::try_start(s).unwrap();
        assert_eq!(host.get("/api/v0/pi?ndigits=10").status, 200);
        let long = {
            let (agent, url) = (host.agent.clone(), host.url("/api/v0/pi?ndigits=1000000"));
            std::thread::spawn(move || {
                let t = Instant::now();
                let r = e2e::send(&agent, "GET", &url, &[], None);
                (r.status, r.json()["pi"].as_str().map(str::len), t.elapsed())
            })
        };
        // Let the computation start; the small requests below must overlap it.
        std::thread::sleep(Duration::from_millis(100));
        let t = Instant::now();
        let small = host.get("/api/v0/pi?ndigits=100");
        let small_took = t.elapsed();
        let t = Instant::now();
        let health = host.get("/healthz");
        let health_took = t.elapsed();
        let long_still_running = !long.is_finished();
        let (status, len, long_took) = long.join().unwrap();
        assert_eq!((status, len), (200, Some(1_000_002)), "the long request");
        assert_eq!((small.status, health.status), (200, 200));
        eprintln!(
            "yields {yields}: pi 100 {small_took:?}, /healthz {health_took:?}, pi 10^6 {long_took:?}"
        );
        if yields {
            assert!(
                long_still_running,
                "the million digits ({long_took:?}) ended before the small requests were answered"
            );
            assert!(
                small_took < prompt && health_took < prompt,
                "with epoch yields: small request {small_took:?}, /healthz {health_took:?} \
                 while a long computation ran ({long_took:?})"
            );
        } else {
            assert!(
                small_took >= prompt,
                "without epoch interruption the small request should have waited for the \
                 computation ({long_took:?}) but took {small_took:?}"
            );
        }
        host.terminate();
    }
}

#[test]
fn memory_beyond_the_limit_is_a_500_and_host_memory_stays_bounded() {
    let (_dir, host) = start(&[]);
    let r = host.get("/f/alloc");
    assert_eq!(r.status, 500, "{}", r.text());
    // The memory limit, not any trap: the answer says which.
    assert_eq!(
        r.error(),
        "component faults exceeded its memory limit",
        "{}",
        r.text()
    );
    assert_eq!(host.get("/f/ok").status, 200);
    let rss_before = host.rss_kib();
    for _ in 0..20 {
        let r = host.get("/f/alloc");
        assert_eq!(r.status, 500);
        assert!(
            r.error().contains("exceeded its memory limit"),
            "{}",
            r.text()
        );
        assert_eq!(host.get("/f/ok").status, 200);
    }
    let rss_after = host.rss_kib();
    assert!(
        rss_after < rss_before + 48 * 1024,
        "host RSS grew from {rss_before} KiB to {rss_after} KiB over 20 out-of-memory instances"
    );
}

#[test]
fn request_and_response_body_limits() {
    let (_dir, host) = start(&[]);
    // Refused from the Content-Length alone, before the body is read.
    let answer = raw(
        host.addr,
        b"POST /f/echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1048577\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("exceeds the limit of 1048576 bytes"),
        "{answer}"
    );
    let r = host.request("POST", "/f/echo", &[], Some(&[b'x'; 1000]));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body_len"], 1000);
    // Chunked (no Content-Length) over the limit is a 413 as well.
    let mut req = b"POST /f/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..20 {
        req.extend_from_slice(format!("{:x}\r\n", 64 * 1024).as_bytes());
        req.extend(std::iter::repeat_n(b'y', 64 * 1024));
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = raw(host.addr, &req, Duration::from_secs(10));
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{}",
        &answer[..answer.len().min(200)]
    );

    // A response over the limit is cut: the connection is aborted mid-body, so the client sees
    // a broken transfer (never a complete response, whatever its status), and the host says why.
    let url = host.url(&format!("/f/big?bytes={}", 3 << 20));
    match try_send(&host.agent, "GET", &url) {
        Ok(r) => panic!(
            "a complete response ({}, {} bytes) instead of a cut transfer",
            r.status,
            r.body.len()
        ),
        Err(e) => assert!(e.contains("reading the body"), "not cut mid-body: {e}"),
    }
    assert!(
        e2e::wait_until(Duration::from_secs(5), || host
            .log_text()
            .contains("response body exceeds the response size limit")),
        "{}",
        host.log_text()
    );
    let r = host.get(&format!("/f/big?bytes={}", 1 << 20));
    assert_eq!(r.body.len(), 1 << 20);
    // A body that never ends is cut at the request timeout.
    let t = Instant::now();
    assert!(try_send(&host.agent, "GET", &host.url("/f/endless")).is_err());
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(host.get("/f/ok").status, 200);
}

#[test]
fn sixty_four_connections_against_a_limit_of_four_get_200_or_503_and_none_hang() {
    let (_dir, host) = start(&[]);
    let host = Arc::new(host);
    let rss_start = host.rss_kib();
    let threads: Vec<_> = (0..64)
        .map(|i| {
            let host = host.clone();
            std::thread::spawn(move || {
                let agent = e2e::Client::new(Duration::from_secs(30));
                let (mut ok, mut busy) = (0, 0);
                let n = if i < 16 { 157 } else { 156 };
                for _ in 0..n {
                    let r = e2e::send(&agent, "GET", &host.url("/f/sleep?ms=2"), &[], None);
                    match r.status {
                        200 => ok += 1,
                        503 => {
                            assert_eq!(r.header("retry-after"), Some("1"));
                            assert!(r.error().contains("busy"));
                            busy += 1
                        }
                        other => panic!("unexpected status {other}: {}", r.text()),
                    }
                }
                (ok, busy)
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for t in threads {
        let (o, b) = t.join().unwrap();
        ok += o;
        busy += b;
    }
    assert_eq!(ok + busy, 10_000);
    assert!(ok > 0 && busy > 0, "{ok} ok, {busy} busy");
    let rss_end = host.rss_kib();
    assert!(
        rss_end < rss_start + 64 * 1024,
        "host RSS {rss_start} → {rss_end} KiB"
    );
    let metrics = host.admin("GET", "/metrics", None).text();
    assert!(
        metrics.contains(&format!(
            "fnhost_requests_rejected_total{{reason=\"queue_full\"}} {busy}"
        )),
        "{metrics}"
    );
}

#[test]
fn malformed_oversized_and_slow_clients_are_rejected_and_others_unaffected() {
    let (_dir, host) = start(&[]);
    assert!(raw(host.addr, b"GARBAGE\r\n\r\n", Duration::from_secs(5)).starts_with("HTTP/1.1 400"));
    let huge = format!(
        "GET /f/ok HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    assert!(raw(host.addr, huge.as_bytes(), Duration::from_secs(5)).starts_with("HTTP/1.1 431"));
    let many: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let many = format!("GET /f/ok HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    assert!(raw(host.addr, many.as_bytes(), Duration::from_secs(5)).starts_with("HTTP/1.1 431"));

    // Slow loris: a header trickling in is dropped after the header read timeout (2s) ...
    let mut slow = TcpStream::connect(host.addr).unwrap();
    slow.write_all(b"GET /f/ok HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    let t = Instant::now();
    let mut closed = false;
    while t.elapsed() < Duration::from_secs(6) {
        // ... while everyone else is served normally.
        assert_eq!(host.get("/f/ok").status, 200);
        if slow.write_all(b"x-slow: 1\r\n").is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut buf = [0u8; 256];
    slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let read = std::io::Read::read(&mut slow, &mut buf);
    assert!(closed || read.is_ok(), "the slow connection was closed");
    assert!(t.elapsed() < Duration::from_secs(6));
    // An idle keep-alive connection is closed after the same timeout.
    let mut idle = TcpStream::connect(host.addr).unwrap();
    idle.write_all(b"GET /f/ok HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(6))).unwrap();
    let t = Instant::now();
    let mut all = Vec::new();
    let _ = std::io::Read::read_to_end(&mut idle, &mut all);
    assert!(String::from_utf8_lossy(&all).starts_with("HTTP/1.1 200"));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "idle connection kept {:?}",
        t.elapsed()
    );
}

#[test]
fn metrics_count_exactly_what_happened() {
    let (dir, host) = start(&[]);
    let sha = hex::encode(Sha256::digest(
        std::fs::read(dir.join("test_faults.wasm")).unwrap(),
    ));
    let version = format!("faults@{}", &sha[..8]);
    for _ in 0..3 {
        assert_eq!(host.get("/f/ok").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(host.get("/f/trap").status, 500);
    }
    assert_eq!(host.get("/f/status?code=404").status, 404);
    assert_eq!(host.get("/nope").status, 404);
    let m = host.admin("GET", "/metrics", None).text();
    let line = |class: &str, n: u32| {
        format!("fnhost_requests_total{{route=\"/f/...\",component=\"faults\",version=\"{version}\",status_class=\"{class}\"}} {n}")
    };
    for want in [
        line("2xx", 3),
        line("5xx", 2),
        line("4xx", 1),
        "fnhost_requests_rejected_total{reason=\"no_route\"} 1".to_string(),
        "fnhost_compiled_cache_total{result=\"miss\"} 1".to_string(),
        "fnhost_module_loads_total{result=\"ok\"} 1".to_string(),
        "fnhost_request_duration_seconds_count{component=\"faults\"} 6".to_string(),
        "fnhost_instantiation_duration_seconds_count 6".to_string(),
        "fnhost_requests_in_flight 0".to_string(),
    ] {
        assert!(m.contains(&want), "missing {want} in\n{m}");
    }
}

#[test]
fn json_logs_carry_request_ids_that_responses_echo() {
    let (_dir, host) = start(&["--log-format", "json"]);
    let r = host.get("/f/ok");
    let id = r.header("x-request-id").unwrap().to_string();
    let r2 = host.request("GET", "/f/echo", &[("x-request-id", "trace-abc-123")], None);
    assert_eq!(r2.header("x-request-id"), Some("trace-abc-123"));
    assert_eq!(
        r2.json()["headers"]["x-request-id"],
        "trace-abc-123",
        "the guest sees the request id"
    );
    std::thread::sleep(Duration::from_millis(200));
    let log = host.log_text();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let req = lines
        .iter()
        .find(|l| l["request_id"] == id.as_str())
        .expect("a log line for the request");
    assert_eq!(req["status"], 200);
    assert_eq!(req["path"], "/f/ok");
    assert_eq!(req["component"], "faults");
    // What log pipelines parse: an RFC 3339 UTC timestamp with microseconds, and the
    // handling time in milliseconds with two decimals.
    let ts = req["timestamp"].as_str().expect("a timestamp");
    let shape: String = ts
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99T99:99:99.999999Z", "timestamp {ts}");
    let ms = req["ms"].as_str().expect("ms");
    assert!(
        ms.parse::<f64>().is_ok_and(|v| v >= 0.0)
            && ms.split_once('.').is_some_and(|(_, d)| d.len() == 2),
        "ms {ms}"
    );
    assert!(lines.iter().any(|l| l["request_id"] == "trace-abc-123"));
}

#[test]
fn every_answered_request_is_in_the_log_when_the_host_stops() {
    // Access lines are written in batches; a host that stops writes what it holds. Only
    // warnings besides the access log, so that no other event's line flushes the batch.
    let dir = TempDir::new("limits");
    dir.copy_in(&wasm("test_faults"), "test_faults.wasm");
    dir.write("spin.toml", MANIFEST);
    let mut s = Start::new(dir.path());
    s.extra_args = vec!["--log-format".into(), "json".into()];
    s.env = vec![("FNHOST_LOG".into(), "warn,fnhost::request=info".into())];
    let host = Host::try_start(s).unwrap();
    let log = host.log.clone();
    let ids: Vec<String> = (0..200)
        .map(|_| {
            let r = host.get("/f/ok");
            assert_eq!(r.status, 200);
            r.header("x-request-id").unwrap().to_string()
        })
        .collect();
    assert!(host.terminate().success());
    let text = std::fs::read_to_string(&log).unwrap();
    let logged: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|l| Some(l["request_id"].as_str()?.to_string()))
        .collect();
    let missing: Vec<&String> = ids.iter().filter(|id| !logged.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} of 200 answered requests have no log line after the host stopped: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

#[test]
fn idle_connections_beyond_the_limit_wait_and_memory_stays_bounded() {
    let (_dir, host) = start(&[]);
    let rss_before = host.rss_kib();
    // 400 clients that connect and say nothing: 100 are accepted, the rest wait in the backlog.
    let idle: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(host.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        host.rss_kib() < rss_before + 32 * 1024,
        "RSS {} → {} KiB",
        rss_before,
        host.rss_kib()
    );
    // The header read timeout (2s) frees the slots; a real client is then served.
    let t = Instant::now();
    let agent = e2e::Client::new(Duration::from_secs(20));
    let r = e2e::send(&agent, "GET", &host.url("/f/ok"), &[], None);
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_secs(15),
        "took {:?}",
        t.elapsed()
    );
    drop(idle);
}
