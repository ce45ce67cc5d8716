//! Components built with Spin's Python SDK, unchanged, on the real host: a test component built
//! here from source (`tests/components/spin-python/app.py`) serving GET and POST, Spin
//! variables, the key-value store and an interface fnhost does not implement; pi v0
//! (`functions/pi-python`, built by `cargo xtask build`) against the reference digits, the same
//! contract as the Rust versions byte for byte, the talk's migration v0 → v2 as a canary, and
//! fresh instances that find their memory resident.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use devkit::python::{spin_sdk_venv, PythonComponent};
use devkit::workspace::target_dir;
use e2e::{pi_decimals, root, wasm, Host, Reply, Start, TempDir};

/// The test component, built once per test process (and only when its source changed).
fn spin_python_component() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = target_dir().join("wasm32-wasip2/release/test_spin_python.wasm");
            let venv = spin_sdk_venv().expect("the Spin Python SDK venv");
            PythonComponent {
                source_dir: &root().join("tests/components/spin-python"),
                module: "app",
                venv: &venv,
            }
            .build(&out)
            .expect("building the Spin Python SDK test component");
            out
        })
        .clone()
}

/// The compiled-module cache every host here shares, holding both Python components: a
/// 25 MB Python component takes a core half a minute to compile.
fn shared_cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        e2e::compiled_cache(
            "e2e-python-cache",
            &[("app", spin_python_component()), ("pi", wasm("pi_python"))],
        )
    })
}

/// Starts a host in `dir` on the shared cache.
fn start(dir: &TempDir, env: &[(&str, &str)]) -> Result<Host, String> {
    let mut start = Start::new(dir.path());
    start.cache_dir = Some(shared_cache());
    start.env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Host::try_start(start)
}

const APP_MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "e2e-python"
[variables]
greeting = { default = "hello" }
region = { default = "eu" }
token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "app"
[[trigger.http]]
route = "/denied/..."
component = "denied"
[component.app]
source = "app.wasm"
key_value_stores = ["default"]
[component.app.variables]
message = "{{ greeting }} from {{ region }}"
token = "{{ token }}"
plain = "as written"
[component.denied]
source = "app.wasm"
"#;

fn app_fixture() -> TempDir {
    let dir = TempDir::new("python");
    dir.copy_in(&spin_python_component(), "app.wasm");
    dir.write("spin.toml", APP_MANIFEST);
    dir
}

fn start_app(dir: &TempDir) -> Host {
    start(dir, &[("SPIN_VARIABLE_TOKEN", "s3cret")]).unwrap_or_else(|e| panic!("{e}"))
}

fn ok_json(r: &Reply) -> serde_json::Value {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn a_spin_sdk_component_serves_get_and_post_with_headers_and_body() {
    let dir = app_fixture();
    let host = start_app(&dir);
    let get = ok_json(&host.request(
        "GET",
        "/echo?a=1&b=%20",
        &[("x-test", "a value, with: punctuation")],
        None,
    ));
    assert_eq!(get["method"], "GET");
    assert_eq!(get["uri"], "/echo?a=1&b=%20");
    assert_eq!(get["x-test"], "a value, with: punctuation");
    assert_eq!(get["body"], "");
    let body = "x".repeat(100_000);
    let post = ok_json(&host.request("POST", "/echo", &[("x-test", "p")], Some(body.as_bytes())));
    assert_eq!(post["method"], "POST");
    assert_eq!(post["x-test"], "p");
    assert_eq!(post["body"].as_str().unwrap().len(), body.len());

    // Spin's platform interfaces fnhost does not implement are listed once, at load...
    let log = host.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("imports interfaces fnhost does not implement"))
        .collect();
    assert_eq!(warnings.len(), 2, "one per component: {warnings:?}");
    assert!(
        warnings[0].contains("spin:mqtt/mqtt@3.0.0"),
        "{}",
        warnings[0]
    );
    assert!(!warnings[0].contains("spin:key-value"), "{}", warnings[0]);
    assert!(!warnings[0].contains("wasi:http"), "{}", warnings[0]);
    // ...and calling one fails that request with a message naming it; the next still works.
    let r = host.get("/mqtt");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(
        host.log_text()
            .contains("fnhost does not implement `spin:mqtt/mqtt@3.0.0`"),
        "{}",
        host.log_text()
    );
    assert_eq!(host.get("/echo").status, 200);
}

#[test]
fn variables_defaults_environment_and_required() {
    let dir = app_fixture();
    let host = start_app(&dir);
    let var = |name: &str| host.get(&format!("/var?name={name}"));
    assert_eq!(ok_json(&var("message"))["value"], "hello from eu");
    assert_eq!(ok_json(&var("plain"))["value"], "as written");
    assert_eq!(ok_json(&var("token"))["value"], "s3cret");
    // Only the component's own variables exist for it; application variables do not.
    assert_eq!(var("greeting").json()["error"], "Error_Undefined");
    assert_eq!(var("Not-A-Name").json()["error"], "Error_InvalidName");
    assert!(!host.log_text().contains("s3cret"), "a secret was logged");
    drop(host);

    // The environment provider overrides a default.
    let host = start(
        &dir,
        &[
            ("SPIN_VARIABLE_TOKEN", "t"),
            ("SPIN_VARIABLE_REGION", "the moon"),
        ],
    )
    .unwrap();
    assert_eq!(
        ok_json(&host.get("/var?name=message"))["value"],
        "hello from the moon"
    );
    drop(host);

    // A required variable without a value stops start-up, naming it and how to set it.
    let err = match start(&dir, &[]) {
        Ok(_) => panic!("fnhost started without the required variable"),
        Err(e) => e,
    };
    assert!(
        err.contains("\"token\" is required") && err.contains("SPIN_VARIABLE_TOKEN"),
        "{err}"
    );
    // A component variable referring to an undeclared application variable is a manifest error.
    dir.write(
        "spin.toml",
        APP_MANIFEST.replace("{{ greeting }}", "{{ salutation }}"),
    );
    let err = match start(&dir, &[("SPIN_VARIABLE_TOKEN", "t")]) {
        Ok(_) => panic!("fnhost started with an undeclared variable"),
        Err(e) => e,
    };
    assert!(
        err.contains("component.app.variables")
            && err.contains("\"salutation\", which is not declared"),
        "{err}"
    );
}

#[test]
fn key_value_across_requests_swaps_and_restarts_and_denied_when_not_granted() {
    let dir = app_fixture();
    let host = start_app(&dir);
    assert_eq!(host.get("/kv/fruit").status, 404);
    ok_json(&host.request("PUT", "/kv/fruit", &[], Some(b"apple")));
    ok_json(&host.request("PUT", "/kv/veg", &[], Some(b"leek")));
    assert_eq!(ok_json(&host.get("/kv/fruit"))["value"], "apple");
    assert_eq!(
        ok_json(&host.get("/kv"))["keys"],
        serde_json::json!(["fruit", "veg"])
    );
    ok_json(&host.request("DELETE", "/kv/veg", &[], None));
    assert_eq!(host.get("/kv/veg").status, 404);

    // A swap to another version keeps the store: it belongs to the host, not to a version.
    let deploy = host.admin(
        "POST",
        &format!(
            "/v1/components/app/deploy?label=v2&path={}",
            dir.join("app.wasm").display()
        ),
        None,
    );
    assert_eq!(deploy.status, 200, "{}", deploy.text());
    let r = host.get("/kv/fruit");
    assert_eq!(r.header("fnhost-version-label"), Some("v2"));
    assert_eq!(ok_json(&r)["value"], "apple");

    // Concurrent instances write without losing an update.
    std::thread::scope(|s| {
        for t in 0..4 {
            let host = &host;
            s.spawn(move || {
                for i in 0..10 {
                    let path = format!("/kv/t{t}-{i}");
                    ok_json(&host.request("PUT", &path, &[], Some(b"v")));
                }
            });
        }
    });
    assert_eq!(
        ok_json(&host.get("/kv"))["keys"].as_array().unwrap().len(),
        41
    );

    // A component without `key_value_stores` is denied the store.
    let r = host.get("/denied/kv/fruit");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["error"], "Error_AccessDenied");
    drop(host);

    // The data survives a restart (the database is in --state-dir).
    let host = start_app(&dir);
    assert_eq!(ok_json(&host.get("/kv/fruit"))["value"], "apple");
    assert!(dir.join("state/key-value.db").is_file());
}

const PI_MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "e2e-pi-python"
[application.tool.fnhost]
request_timeout = "120s"
[variables]
pi_max_ndigits = { default = "20000" }
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[[trigger.http]]
route = "/rust/pi"
component = "rust"
[component.pi]
source = "pi_python.wasm"
[component.pi.variables]
max_ndigits = "{{ pi_max_ndigits }}"
[component.pi.tool.fnhost]
label = "v0"
[component.rust]
source = "pi_chudnovsky.wasm"
variables = { max_ndigits = "20000" }
"#;

fn pi_fixture() -> (TempDir, Host) {
    let dir = TempDir::new("pi-python");
    dir.copy_in(&wasm("pi_python"), "pi_python.wasm");
    dir.copy_in(&wasm("pi_chudnovsky"), "pi_chudnovsky.wasm");
    dir.write("spin.toml", PI_MANIFEST);
    let host = start(&dir, &[]).unwrap_or_else(|e| panic!("{e}"));
    (dir, host)
}

#[test]
fn pi_v0_python_digits_match_the_reference() {
    let (_dir, host) = pi_fixture();
    for n in [
        0usize, 1, 2, 22, 99, 765, 1000, 4299, 4300, 4301, 10_000, 20_000,
    ] {
        let r = host.get(&format!("/api/v0/pi?ndigits={n}"));
        let want = if n == 0 {
            "3".to_string()
        } else {
            format!("3.{}", pi_decimals(n))
        };
        assert_eq!(
            r.text(),
            format!("{{\"ndigits\":{n},\"pi\":\"{want}\"}}"),
            "ndigits={n}"
        );
    }
    // The default is 22 digits; the maximum is the manifest's variable.
    assert_eq!(ok_json(&host.get("/api/v0/pi"))["ndigits"], 22);
    let r = host.get("/api/v0/pi?ndigits=20001");
    assert_eq!(r.status, 400);
    assert!(r.error().contains("at most 20000"), "{}", r.error());
}

/// A fresh instance per request (fnhost's default) gets its memory slot back without page
/// faults. CPython writes all over its 18.6 MiB heap snapshot; each page faulted in again
/// costs a copy and, with the other core running the host too, a TLB shootdown: about two
/// thirds of a request's CPU while the pooling allocator reset only the first 32 runs of
/// written pages in place and decommitted the rest, as wasmtime 48's scan does (554 faults
/// per request in this test; the vendored wasmtime goes on past 32 runs: vendor/README.md,
/// bench/analysis.md).
#[test]
fn a_fresh_python_instance_per_request_takes_no_page_faults() {
    let (_dir, host) = pi_fixture();
    let pi = |n: usize| {
        let r = host.get("/api/v0/pi?ndigits=10");
        assert_eq!(
            r.text(),
            r#"{"ndigits":10,"pi":"3.1415926535"}"#,
            "request {n}"
        );
    };
    // The first requests take the slot and the host's own memory.
    (0..20).for_each(pi);
    let before = host.minor_faults();
    const REQUESTS: u64 = 50;
    (0..REQUESTS as usize).for_each(pi);
    let per_request = (host.minor_faults() - before) / REQUESTS;
    assert!(
        per_request < 20,
        "{per_request} page faults per request with a fresh Python instance each"
    );
}

#[test]
fn pi_v0_python_answers_exactly_as_the_rust_versions() {
    let (_dir, host) = pi_fixture();
    let long = "9".repeat(60);
    let queries = [
        "",
        "?ndigits=5",
        "?ndigits=0",
        "?ndigits=007",
        "?ndigits=%37",
        "?ndigits=",
        "?ndigits",
        "?ndigits=%207",
        "?ndigits=+7",
        "?ndigits=-3",
        "?ndigits=5.5",
        "?ndigits=1e6",
        "?ndigits=5&ndigits=6",
        "?ndigits=5&x=1",
        "?NDIGITS=5",
        "?ndigits=20001",
        "?ndigits=%C3%A9",
        "?%22quoted%22=1",
        "?&&ndigits=3&",
        &format!("?ndigits={long}"),
    ];
    let headers_of = |r: &Reply| {
        ["content-type", "cache-control", "etag", "allow"].map(|h| r.header(h).map(str::to_string))
    };
    for method in ["GET", "HEAD", "POST", "DELETE"] {
        for q in &queries {
            for if_none_match in [None, Some("\"pi-5\""), Some("W/\"pi-22\", \"x\"")] {
                let headers: Vec<(&str, &str)> = if_none_match
                    .iter()
                    .map(|v| ("if-none-match", *v))
                    .collect();
                let body = (method == "POST").then_some(&b""[..]);
                let python = host.request(method, &format!("/api/v0/pi{q}"), &headers, body);
                let rust = host.request(method, &format!("/rust/pi{q}"), &headers, body);
                let what = format!("{method} {q} if-none-match={if_none_match:?}");
                assert_eq!(python.status, rust.status, "{what}: {}", python.text());
                assert_eq!(headers_of(&python), headers_of(&rust), "{what}");
                assert_eq!(python.text(), rust.text(), "{what}");
            }
        }
    }
}

#[test]
fn the_talk_as_a_live_migration_v0_python_canary_v2_rust_promote() {
    let (dir, host) = pi_fixture();
    let label = |r: &Reply| r.header("fnhost-version-label").unwrap_or("-").to_string();
    assert_eq!(label(&host.get("/api/v0/pi?ndigits=5")), "v0");
    let canary = host.admin(
        "POST",
        &format!(
            "/v1/components/pi/canary?weight=10&label=v2&sticky_header=x-user&path={}",
            dir.join("pi_chudnovsky.wasm").display()
        ),
        None,
    );
    assert_eq!(canary.status, 200, "{}", canary.text());
    let want = format!("{{\"ndigits\":100,\"pi\":\"3.{}\"}}", pi_decimals(100));
    let mut on_v2 = 0;
    for u in 0..200 {
        let r = host.request(
            "GET",
            "/api/v0/pi?ndigits=100",
            &[("x-user", &format!("u{u}"))],
            None,
        );
        assert_eq!(r.status, 200);
        // Both versions give the same bytes: the migration is invisible to users.
        assert_eq!(r.text(), want);
        on_v2 += usize::from(label(&r) == "v2");
    }
    assert!(
        (5..=40).contains(&on_v2),
        "{on_v2} of 200 users on v2 at 10%"
    );
    let promote = host.admin("POST", "/v1/components/pi/promote", None);
    assert_eq!(promote.status, 200, "{}", promote.text());
    assert!((0..20).all(|_| label(&host.get("/api/v0/pi?ndigits=5")) == "v2"));
}
