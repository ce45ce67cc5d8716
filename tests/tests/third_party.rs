//! A component no one here wrote runs unchanged: the `http-proxy` example of the Bytecode
//! Alliance's `wasip2` crate (Rust bindings of WASI 0.2), built from its published source on
//! crates.io the way its `Cargo.toml` declares it (a `cdylib` for `wasm32-wasip2`), then served.
//!
//! Why not `sunfishcode/hello-wasi-http`: its README builds with `cargo component`, a tool to
//! compile from source first, and its source lives only on GitHub, which CI cannot reach. This
//! example is the same kind of program (a `wasi:http/proxy` world exporting
//! `incoming-handler`, answering a fixed greeting) and builds offline once crates.io has been
//! reached.

use std::path::PathBuf;
use std::process::Command;

use devkit::cmd::{capture, run};
use devkit::workspace::target_dir;
use e2e::{Host, TempDir};

/// The published crate and version whose example is built.
const CRATE: &str = "wasip2";
const VERSION: &str = "2.0.1";

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.env_remove("RUST_BACKTRACE");
    c
}

/// The example's source file inside the crate as cargo downloaded it.
fn example_source(project: &std::path::Path) -> PathBuf {
    let metadata =
        capture(
            cargo()
                .current_dir(project)
                .args(["metadata", "--format-version", "1"]),
        )
        .expect("cargo metadata");
    let metadata: serde_json::Value = serde_json::from_str(&metadata).unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["name"] == CRATE
                && p["version"]
                    .as_str()
                    .is_some_and(|v| v.split('+').next() == Some(VERSION))
        })
        .unwrap_or_else(|| panic!("{CRATE} {VERSION} not in the metadata"));
    PathBuf::from(package["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap()
        .join("examples/http-proxy.rs")
}

fn project_manifest(lib: &str) -> String {
    format!(
        "[package]\nname = \"third-party-http-proxy\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\
         [lib]\ncrate-type = [\"cdylib\"]\npath = \"{lib}\"\n\
         [dependencies]\n{CRATE} = {{ version = \"={VERSION}\", features = [\"std\"] }}\n\
         [workspace]\n"
    )
}

#[test]
fn a_third_party_wasip2_http_proxy_example_runs_unchanged() {
    let dir = TempDir::new("third-party");
    dir.write("project/src/empty.rs", "");
    dir.write("project/Cargo.toml", project_manifest("src/empty.rs"));
    let project = dir.join("project");
    let source = example_source(&project);
    assert!(source.is_file(), "{} is missing", source.display());
    dir.write(
        "project/Cargo.toml",
        project_manifest(&source.display().to_string()),
    );
    let build_dir = target_dir().join("third-party");
    run(cargo()
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &build_dir)
        .args(["build", "--release", "--target", "wasm32-wasip2"]))
    .expect("building the example");
    dir.copy_in(
        &build_dir.join("wasm32-wasip2/release/third_party_http_proxy.wasm"),
        "proxy.wasm",
    );
    dir.write(
        "spin.toml",
        "spin_manifest_version = 2\n[application]\nname = \"third-party\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"proxy\"\n\
         [component.proxy]\nsource = \"proxy.wasm\"\n",
    );
    let host = Host::start(dir.path());
    for path in ["/", "/any/path?x=1"] {
        let r = host.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.text(), "Hello, WASI!");
    }
    let log = host.log_text();
    assert!(
        log.contains("wasi:http/incoming-handler@0.2"),
        "served as a WASIp2 component: {log}"
    );
    assert!(
        !log.contains("does not implement"),
        "the proxy world needs nothing fnhost lacks: {log}"
    );
}
