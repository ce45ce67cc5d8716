//! Modules by URL and digest (Spin's `source = { url, digest }`), against a static HTTP server
//! this test runs on 127.0.0.1: download, verify, cache by digest; a digest mismatch, an HTTP
//! error or an unreachable server leaves the component not ready at start-up, and never
//! replaces a serving version during a live update.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use e2e::{wait_until, wasm, Host, Start, TempDir};
use sha2::{Digest, Sha256};

/// A static file server for one directory; counts requests; stops when dropped.
struct StaticServer {
    port: u16,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StaticServer {
    fn start(root: PathBuf) -> StaticServer {
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
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let path = line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("/")
                    .trim_start_matches('/')
                    .to_string();
                loop {
                    let mut l = String::new();
                    if reader.read_line(&mut l).unwrap_or(0) == 0 || l == "\r\n" {
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

    fn url(&self, file: &str) -> String {
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

fn sha(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn manifest(url: &str, digest: &str) -> String {
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"urls\"\n[[trigger.http]]\nroute = \"/api/v0/pi\"\ncomponent = \"pi\"\n[component.pi]\nsource = {{ url = \"{url}\", digest = \"sha256:{digest}\" }}\n"
    )
}

#[test]
fn url_sources_are_downloaded_verified_and_cached() {
    let store = TempDir::new("store");
    let v1 = store.copy_in(&wasm("pi_picrunch"), "pi_picrunch.wasm");
    let v2 = store.copy_in(&wasm("pi_chudnovsky"), "pi_chudnovsky.wasm");
    let server = StaticServer::start(store.path().to_path_buf());
    let dir = TempDir::new("urls");
    dir.write(
        "spin.toml",
        manifest(&server.url("pi_picrunch.wasm"), &sha(&v1)),
    );
    let cache = dir.join("cache");
    let mut start = Start::new(dir.path());
    start.cache_dir = Some(&cache);
    let host = Host::try_start(start).unwrap();
    assert!(wait_until(Duration::from_secs(10), || host
        .get("/readyz")
        .status
        == 200));
    let r = host.get("/api/v0/pi?ndigits=5");
    assert_eq!(
        (r.status, r.header("fnhost-version").unwrap().to_string()),
        (200, format!("pi@{}", &sha(&v1)[..8]))
    );
    assert_eq!(server.hits.load(Ordering::Relaxed), 1);
    assert!(
        cache.join(format!("sources/{}.wasm", sha(&v1))).is_file(),
        "cached by digest"
    );

    // Live update to a URL whose content does not match its digest: refused, v1 keeps serving.
    // (The same digest as v1 would not even be fetched: the cache is content-addressed.)
    dir.write(
        "spin.toml",
        manifest(&server.url("pi_picrunch.wasm"), &sha(&v2)),
    );
    assert!(
        wait_until(Duration::from_secs(10), || host
            .log_text()
            .contains("digest mismatch")),
        "{}",
        host.log_text()
    );
    assert_eq!(
        host.get("/api/v0/pi?ndigits=5")
            .header("fnhost-version")
            .unwrap(),
        format!("pi@{}", &sha(&v1)[..8])
    );
    // A 404: refused too.
    dir.write("spin.toml", manifest(&server.url("gone.wasm"), &sha(&v2)));
    assert!(wait_until(Duration::from_secs(10), || host
        .log_text()
        .contains("HTTP 404")));
    assert_eq!(host.get("/api/v0/pi?ndigits=5").status, 200);
    // The right digest: swapped.
    dir.write(
        "spin.toml",
        manifest(&server.url("pi_chudnovsky.wasm"), &sha(&v2)),
    );
    let v2_name = format!("pi@{}", &sha(&v2)[..8]);
    assert!(wait_until(Duration::from_secs(10), || host
        .get("/api/v0/pi?ndigits=5")
        .header("fnhost-version")
        == Some(v2_name.as_str())));
    drop(host);

    // A restart with the same cache downloads nothing.
    let hits = server.hits.load(Ordering::Relaxed);
    let mut start = Start::new(dir.path());
    start.cache_dir = Some(&cache);
    let host = Host::try_start(start).unwrap();
    assert!(wait_until(Duration::from_secs(10), || host
        .get("/readyz")
        .status
        == 200));
    assert_eq!(
        server.hits.load(Ordering::Relaxed),
        hits,
        "served from the download cache"
    );
}

#[test]
fn a_bad_url_source_at_start_up_means_not_ready_with_the_reason() {
    let store = TempDir::new("store-bad");
    let v1 = store.copy_in(&wasm("pi_picrunch"), "pi_picrunch.wasm");
    let server = StaticServer::start(store.path().to_path_buf());
    let dir = TempDir::new("urls-bad");
    let wrong = "0".repeat(64);
    dir.write(
        "spin.toml",
        manifest(&server.url("pi_picrunch.wasm"), &wrong),
    );
    let host = Host::start(dir.path());
    let ready = host.get("/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("digest mismatch"), "{}", ready.text());
    let r = host.get("/api/v0/pi");
    assert_eq!(r.status, 503);
    assert!(
        r.error().contains("component pi is not loaded"),
        "{}",
        r.error()
    );
    assert!(
        host.log_text().contains("not ready, retrying"),
        "{}",
        host.log_text()
    );
    // Fixing the manifest makes it ready without a restart.
    dir.write(
        "spin.toml",
        manifest(&server.url("pi_picrunch.wasm"), &sha(&v1)),
    );
    assert!(
        wait_until(Duration::from_secs(15), || host.get("/readyz").status
            == 200),
        "{}",
        host.log_text()
    );
    assert_eq!(host.get("/api/v0/pi?ndigits=3").status, 200);
}
