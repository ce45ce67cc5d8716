//! Modules by URL and digest (Spin's `source = { url, digest }`), against a static HTTP server
//! this test runs on 127.0.0.1: download, verify, cache by digest; a digest mismatch, an HTTP
//! error or an unreachable server leaves the component not ready at start-up, and never
//! replaces a serving version during a live update.

use std::sync::atomic::Ordering;
use std::time::Duration;

use e2e::{wait_until, wasm, Host, Start, StaticServer, TempDir};
use sha2::{Digest, Sha256};

fn sha(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn manifest(url: &str, digest: &str) -> String {
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"urls\"\n[[trigger.http]]\nroute = \"/api/v0/pi\"\ncomponent = \"pi\"\n[component.pi]\nsource = {{ url = \"{url}\", digest = \"sha256:{digest}\" }}\n"
    )
}

/// fnhost on `dir` with the compiled-module and download cache `cache`, once /readyz is 200.
fn start_ready(dir: &std::path::Path, cache: &std::path::Path) -> Host {
    let mut start = Start::new(dir);
    start.cache_dir = Some(cache);
    let host = Host::try_start(start).unwrap();
    assert!(wait_until(Duration::from_secs(10), || host
        .get("/readyz")
        .status
        == 200));
    host
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
    let host = start_ready(dir.path(), &cache);
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
    let _host = start_ready(dir.path(), &cache);
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
    assert_eq!(ready.json()["not_ready"][0]["component"], "pi");
    let r = host.get("/api/v0/pi");
    assert_eq!(r.status, 503);
    assert!(
        r.error().contains("component pi is not loaded"),
        "{}",
        r.error()
    );
    // Public answers say what is not ready, never why: the reason names URLs and internal
    // errors, which stay in the log and the admin status.
    for public in [ready.text(), r.text()] {
        assert!(
            !public.contains("127.0.0.1") && !public.contains("digest"),
            "internal details in a public answer: {public}"
        );
    }
    let status = host.admin("GET", "/v1/components/pi", None).json();
    assert!(
        status["load_error"].as_str().is_some_and(
            |e| e.contains("digest mismatch") && e.contains(&server.url("pi_picrunch.wasm"))
        ),
        "{status}"
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
