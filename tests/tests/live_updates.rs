//! Live updates over real HTTP: swaps under load, canaries (weighted, sticky, guarded),
//! blue/green, promote and rollback, refused modules, admin authentication, and declarative
//! updates through the watched manifest (including a Kubernetes-style ConfigMap symlink swap).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{pi_decimals, wait_until, wasm, Host, Reply, TempDir, TOKEN};
use sha2::{Digest, Sha256};

fn version_of(component: &str, file: &std::path::Path) -> String {
    let sha = hex::encode(Sha256::digest(std::fs::read(file).unwrap()));
    format!("{component}@{}", &sha[..8])
}

fn pi_fixture(extra: &str) -> (TempDir, String, String) {
    let dir = TempDir::new("live");
    let v2 = dir.copy_in(&wasm("pi_chudnovsky"), "pi_chudnovsky.wasm");
    let v1 = dir.copy_in(&wasm("pi_picrunch"), "pi_picrunch.wasm");
    dir.copy_in(&wasm("test_faults"), "test_faults.wasm");
    dir.copy_in(&wasm("test_hello_p2"), "test_hello_p2.wasm");
    dir.write(
        "spin.toml",
        format!(
            r#"spin_manifest_version = 2
[application]
name = "e2e-live"
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[[trigger.http]]
route = "/svc/..."
component = "svc"
[component.pi]
source = "pi_picrunch.wasm"
[component.svc]
source = "test_hello_p2.wasm"
{extra}"#
        ),
    );
    (dir, version_of("pi", &v1), version_of("pi", &v2))
}

fn version(r: &Reply) -> String {
    r.header("fnhost-version").unwrap_or("-").to_string()
}

fn admin_ok(host: &Host, path: &str) -> serde_json::Value {
    let r = host.admin("POST", path, None);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

#[test]
fn hundred_swaps_under_load_fail_no_request() {
    let (dir, v1, v2) = pi_fixture("");
    let host = Arc::new(Host::start(dir.path()));
    let want = format!("{{\"ndigits\":50,\"pi\":\"3.{}\"}}", pi_decimals(50));
    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (host, want, done, v1, v2) = (
                host.clone(),
                want.clone(),
                done.clone(),
                v1.clone(),
                v2.clone(),
            );
            std::thread::spawn(move || {
                let mut seen = HashMap::<String, usize>::new();
                let started = Instant::now();
                for _ in 0..5000 {
                    let r = host.get("/api/v0/pi?ndigits=50");
                    assert_eq!(r.status, 200, "{}", r.text());
                    assert_eq!(r.text(), want, "a whole, correct body");
                    let v = version(&r);
                    assert!(
                        v == v1 || v == v2,
                        "exactly one known version answered: {v}"
                    );
                    *seen.entry(v).or_default() += 1;
                    assert!(
                        started.elapsed() < Duration::from_secs(240),
                        "load phase took too long"
                    );
                }
                done.store(true, Ordering::Relaxed);
                seen
            })
        })
        .collect();
    for i in 0..100 {
        let file = if i % 2 == 0 {
            "pi_chudnovsky.wasm"
        } else {
            "pi_picrunch.wasm"
        };
        let status = admin_ok(
            &host,
            &format!("/v1/components/pi/deploy?path={}", dir.join(file).display()),
        );
        let want_v = if i % 2 == 0 { &v2 } else { &v1 };
        assert_eq!(&status["current"]["version"], want_v.as_str());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut total = HashMap::<String, usize>::new();
    for c in clients {
        for (v, n) in c.join().expect("a client saw a failed or mixed response") {
            *total.entry(v).or_default() += n;
        }
    }
    assert_eq!(total.values().sum::<usize>(), 20_000);
    assert_eq!(
        total.len(),
        2,
        "both versions answered during the swaps: {total:?}"
    );
}

#[test]
fn canary_weight_sticky_and_promote_rollback() {
    let (dir, v1, v2) = pi_fixture("");
    let host = Host::start(dir.path());
    // 10% canary.
    admin_ok(
        &host,
        &format!(
            "/v1/components/pi/canary?weight=10&label=v2&path={}",
            dir.join("pi_chudnovsky.wasm").display()
        ),
    );
    let n = 10_000;
    let to_candidate = (0..n)
        .filter(|_| version(&host.get("/api/v0/pi?ndigits=3")) == v2)
        .count();
    let share = to_candidate as f64 / n as f64;
    assert!((0.08..=0.12).contains(&share), "candidate share {share}");

    // Sticky by header at 50%: a user always sees one version; users split near the weight.
    admin_ok(&host, "/v1/components/pi/weight?weight=50");
    admin_ok(
        &host,
        &format!(
            "/v1/components/pi/canary?weight=50&sticky_header=x-user&path={}",
            dir.join("pi_chudnovsky.wasm").display()
        ),
    );
    let mut per_user = HashMap::new();
    for u in 0..200 {
        let user = format!("user-{u}");
        let versions: HashSet<String> = (0..5)
            .map(|_| {
                version(&host.request("GET", "/api/v0/pi?ndigits=3", &[("x-user", &user)], None))
            })
            .collect();
        assert_eq!(versions.len(), 1, "{user} saw {versions:?}");
        per_user.insert(user, versions.into_iter().next().unwrap());
    }
    let on_candidate = per_user.values().filter(|v| **v == v2).count();
    assert!(
        (70..=130).contains(&on_candidate),
        "{on_candidate} of 200 users on the candidate"
    );

    // Promote: everyone on v2. Rollback: everyone back on v1 at once.
    admin_ok(&host, "/v1/components/pi/promote");
    assert!((0..50).all(|_| version(&host.get("/api/v0/pi?ndigits=3")) == v2));
    let status = admin_ok(&host, "/v1/components/pi/rollback");
    assert_eq!(status["current"]["version"], v1.as_str());
    assert!((0..50).all(|_| version(&host.get("/api/v0/pi?ndigits=3")) == v1));
}

#[test]
fn blue_green_stage_switch_and_switch_back() {
    let (dir, v1, v2) =
        pi_fixture("[component.pi.tool.fnhost]\npin_key = \"testers-only-0123456789\"\n");
    let host = Host::start(dir.path());
    admin_ok(
        &host,
        &format!(
            "/v1/components/pi/stage?path={}",
            dir.join("pi_chudnovsky.wasm").display()
        ),
    );
    assert!(
        (0..200).all(|_| version(&host.get("/api/v0/pi?ndigits=3")) == v1),
        "a staged version gets no traffic"
    );
    let pinned = |key: Option<&str>| {
        let mut headers = vec![("fnhost-version-pin", "candidate")];
        headers.extend(key.map(|k| ("fnhost-pin-key", k)));
        version(&host.request("GET", "/api/v0/pi?ndigits=3", &headers, None))
    };
    assert_eq!(
        pinned(Some("testers-only-0123456789")),
        v2,
        "testers reach the staged version with the pin header and the pin key"
    );
    assert_eq!(
        pinned(None),
        v1,
        "without the key the pin header is ignored"
    );
    assert_eq!(
        pinned(Some("testers-only-guessed")),
        v1,
        "a wrong key pins nothing"
    );
    let t = Instant::now();
    admin_ok(&host, "/v1/components/pi/switch");
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "switching loads nothing"
    );
    assert!((0..50).all(|_| version(&host.get("/api/v0/pi?ndigits=3")) == v2));
    admin_ok(&host, "/v1/components/pi/switch");
    assert!(
        (0..50).all(|_| version(&host.get("/api/v0/pi?ndigits=3")) == v1),
        "switch back is instant"
    );
}

#[test]
fn a_failing_candidate_is_rolled_back_by_its_guard() {
    let (dir, _, _) = pi_fixture("");
    let host = Host::start(dir.path());
    let current = version_of("svc", &dir.join("test_hello_p2.wasm"));
    // The candidate answers /svc/status?code=503 with 503; the current version answers 200.
    admin_ok(
        &host,
        &format!(
            "/v1/components/svc/canary?weight=50&max_error_rate=0.05&guard_window=20&path={}",
            dir.join("test_faults.wasm").display()
        ),
    );
    let statuses: Vec<u16> = (0..300)
        .map(|_| host.get("/svc/status?code=503").status)
        .collect();
    assert!(
        statuses.contains(&503),
        "the candidate answered some requests"
    );
    assert!(
        statuses[250..].iter().all(|s| *s == 200),
        "after the guard tripped only the current version answers"
    );
    let status = host.admin("GET", "/v1/components/svc", None).json();
    assert_eq!(status["candidate"]["weight"], 0.0);
    let trip = &status["last_guard_trip"];
    assert!(
        trip["errors"].as_u64().unwrap() >= 2 && trip["window"] == 20,
        "{trip}"
    );
    assert!(trip["error_rate"].as_f64().unwrap() > 0.05);
    assert_eq!(status["current"]["version"], current.as_str());
    assert!(host.log_text().contains("canary guard tripped"));
}

#[test]
fn broken_modules_are_refused_and_the_old_version_keeps_serving() {
    let (dir, v1, _) = pi_fixture("");
    let host = Host::start(dir.path());
    let junk = dir.write("junk.wasm", b"this is not wasm at all".repeat(10));
    let core = dir.write("core.wasm", b"\0asm\x01\0\0\0");
    let truncated = dir.write(
        "truncated.wasm",
        &std::fs::read(wasm("pi_chudnovsky")).unwrap()[..50_000],
    );
    let command = dir.copy_in(&wasm("not-http"), "not-http.wasm");
    for (file, reason) in [
        (&junk, "not a WebAssembly component"),
        (&core, "not a WebAssembly component"),
        (&truncated, "compiling"),
        (
            &command,
            "exports neither wasi:http/handler@0.3.x nor wasi:http/incoming-handler@0.2.x",
        ),
    ] {
        let r = host.admin(
            "POST",
            &format!("/v1/components/pi/deploy?path={}", file.display()),
            None,
        );
        assert_eq!(r.status, 422, "{}: {}", file.display(), r.text());
        assert!(
            r.error().contains(reason),
            "{}: {}",
            file.display(),
            r.error()
        );
        let after = host.get("/api/v0/pi?ndigits=5");
        assert_eq!((after.status, version(&after)), (200, v1.clone()));
    }
    // Uploading bytes works the same way (remote use).
    let r = host.admin("POST", "/v1/components/pi/deploy", Some(b"garbage"));
    assert_eq!(r.status, 422);
    let r = host.admin(
        "POST",
        "/v1/components/pi/deploy?label=v2",
        Some(&std::fs::read(wasm("pi_chudnovsky")).unwrap()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        host.get("/api/v0/pi").header("fnhost-version-label"),
        Some("v2")
    );
    // A smoke request that fails refuses the swap.
    let r = host.admin(
        "POST",
        &format!(
            "/v1/components/svc/deploy?smoke=/svc/trap&path={}",
            dir.join("test_faults.wasm").display()
        ),
        None,
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(
        r.error().contains("smoke request /svc/trap"),
        "{}",
        r.error()
    );
    let metrics = host.admin("GET", "/metrics", None).text();
    assert!(
        metrics.contains("fnhost_module_loads_total{result=\"error\"} 5"),
        "{metrics}"
    );
}

#[test]
fn admin_needs_the_token_and_is_not_on_the_public_listener() {
    let (dir, _, _) = pi_fixture("");
    let host = Host::start(dir.path());
    let admin = |headers: &[(&str, &str)], method: &str, path: &str| {
        e2e::send(
            &host.agent,
            method,
            &format!("http://{}{path}", host.admin),
            headers,
            None,
        )
    };
    for (method, path) in [
        ("GET", "/v1/status"),
        ("GET", "/metrics"),
        ("POST", "/v1/components/pi/rollback"),
    ] {
        assert_eq!(
            admin(&[], method, path).status,
            401,
            "{path} without a token"
        );
        assert_eq!(
            admin(
                &[("authorization", "Bearer wrong-token-wrong-token")],
                method,
                path
            )
            .status,
            401
        );
        assert_eq!(
            admin(
                &[("authorization", &format!("Bearer {TOKEN}x"))],
                method,
                path
            )
            .status,
            401
        );
    }
    assert_eq!(
        admin(
            &[("authorization", &format!("Bearer {TOKEN}"))],
            "GET",
            "/v1/status"
        )
        .status,
        200
    );
    assert_eq!(
        host.get("/v1/status").status,
        404,
        "admin routes are not served publicly"
    );
    assert_eq!(host.get("/metrics").status, 404);
}

#[test]
fn cli_drives_the_admin_api() {
    let (dir, v1, v2) = pi_fixture("");
    let host = Host::start(dir.path());
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(e2e::fnhost_bin())
            .args(args)
            .env("FNHOST_ADMIN", host.admin.to_string())
            .env("FNHOST_ADMIN_TOKEN", TOKEN)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let v2_file = dir.join("pi_chudnovsky.wasm");
    let (ok, out, err) = cli(&[
        "canary",
        "pi",
        v2_file.to_str().unwrap(),
        "--weight",
        "100",
        "--label",
        "v2",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains(&v2), "{out}");
    assert_eq!(version(&host.get("/api/v0/pi?ndigits=3")), v2);
    let (ok, _, err) = cli(&["promote", "pi"]);
    assert!(ok, "{err}");
    let (ok, out, _) = cli(&["status"]);
    assert!(
        ok && out.contains(&format!("\"version\": \"{v2}\"")),
        "{out}"
    );
    let (ok, _, _) = cli(&["rollback", "pi"]);
    assert!(ok);
    assert_eq!(version(&host.get("/api/v0/pi?ndigits=3")), v1);
    let (ok, _, err) = cli(&["promote", "pi"]);
    assert!(!ok && err.contains("no candidate"), "{err}");
    let out = std::process::Command::new(e2e::fnhost_bin())
        .args(["status"])
        .env("FNHOST_ADMIN", host.admin.to_string())
        .env("FNHOST_ADMIN_TOKEN", "wrong-token-wrong")
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("401"));
}

#[test]
fn declarative_updates_through_the_manifest_and_module_files() {
    let (dir, v1, v2) = pi_fixture("");
    let host = Host::start(dir.path());
    let current = || version(&host.get("/api/v0/pi?ndigits=3"));
    assert_eq!(current(), v1);
    // A new source in the manifest is a swap.
    let manifest = std::fs::read_to_string(dir.join("spin.toml")).unwrap();
    dir.write(
        "spin.toml",
        manifest.replace(
            "source = \"pi_picrunch.wasm\"",
            "source = \"pi_chudnovsky.wasm\"",
        ),
    );
    assert!(
        wait_until(Duration::from_secs(15), || current() == v2),
        "manifest source change applied"
    );
    // A candidate table canaries; weight 100 sends everything to it.
    dir.write(
        "spin.toml",
        manifest.replace("source = \"pi_picrunch.wasm\"", "source = \"pi_chudnovsky.wasm\"")
            + "[component.pi.tool.fnhost.candidate]\nsource = \"pi_picrunch.wasm\"\nweight = 100\nlabel = \"old\"\n",
    );
    assert!(
        wait_until(Duration::from_secs(15), || current() == v1),
        "candidate from the manifest applied"
    );
    let status = host.admin("GET", "/v1/components/pi", None).json();
    assert_eq!(status["candidate"]["label"], "old");
    // A broken manifest changes nothing.
    dir.write("spin.toml", "spin_manifest_version = 2\n[application");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(current(), v1);
    assert!(host.log_text().contains("manifest change not applied"));
    // The module file replaced in place (same path, new bytes) is a swap too.
    dir.write("spin.toml", manifest.clone());
    assert!(wait_until(Duration::from_secs(15), || host
        .admin("GET", "/v1/components/pi", None)
        .json()["candidate"]
        .is_null()));
    dir.copy_in(&wasm("pi_chudnovsky"), "pi_picrunch.wasm");
    assert!(
        wait_until(Duration::from_secs(15), || current() == v2),
        "module file replaced in place"
    );
    // A half-written module is tried, refused and never served; the complete file then loads.
    let refusals = || host.log_text().matches("module change not applied").count();
    let refused_before = refusals();
    std::fs::write(
        dir.join("pi_picrunch.wasm"),
        &std::fs::read(wasm("pi_picrunch")).unwrap()[..40_000],
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || refusals() > refused_before),
        "the watcher never tried the half-written module:\n{}",
        host.log_text()
    );
    assert_eq!(current(), v2, "a half-written module is never served");
    dir.copy_in(&wasm("pi_picrunch"), "pi_picrunch.wasm");
    assert!(wait_until(Duration::from_secs(15), || current() == v1));
}

#[test]
fn configmap_symlink_swap_is_applied() {
    let dir = TempDir::new("configmap");
    let v1_file = dir.copy_in(&wasm("pi_picrunch"), "modules/pi_picrunch.wasm");
    let v2_file = dir.copy_in(&wasm("pi_chudnovsky"), "modules/pi_chudnovsky.wasm");
    let manifest = |file: &std::path::Path| {
        format!("spin_manifest_version = 2\n[application]\nname = \"cm\"\n[[trigger.http]]\nroute = \"/api/v0/pi\"\ncomponent = \"pi\"\n[component.pi]\nsource = \"{}\"\n", file.display())
    };
    // The layout kubelet creates for a ConfigMap volume.
    dir.write("config/..2026_11_25_a/spin.toml", manifest(&v1_file));
    std::os::unix::fs::symlink("..2026_11_25_a", dir.join("config/..data")).unwrap();
    std::os::unix::fs::symlink("..data/spin.toml", dir.join("config/spin.toml")).unwrap();
    let mut start = e2e::Start::new(dir.path());
    start.manifest = "config/spin.toml";
    let host = Host::try_start(start).unwrap();
    let current = || version(&host.get("/api/v0/pi?ndigits=3"));
    assert_eq!(current(), version_of("pi", &v1_file));
    // kubelet's update: a new timestamped directory, a new ..data_tmp link renamed over ..data.
    dir.write("config/..2026_11_25_b/spin.toml", manifest(&v2_file));
    std::os::unix::fs::symlink("..2026_11_25_b", dir.join("config/..data_tmp")).unwrap();
    std::fs::rename(dir.join("config/..data_tmp"), dir.join("config/..data")).unwrap();
    std::fs::remove_dir_all(dir.join("config/..2026_11_25_a")).unwrap();
    assert!(
        wait_until(Duration::from_secs(15), || current()
            == version_of("pi", &v2_file)),
        "ConfigMap swap applied:\n{}",
        host.log_text()
    );
}
