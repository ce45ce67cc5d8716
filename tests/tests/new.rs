//! `fnhost new`: each template scaffolded into a new application directory with only the
//! `fnhost` binary (and, for onnx-model, a model file), built the way `cargo xtask build` builds
//! components (the manifest's build commands; http-python's in the Spin SDK venv, activated),
//! served by the real host and called; the manifest valid against Spin's schema and an existing
//! one kept line for line; refusals that say why and write nothing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use devkit::python::{activated, spin_sdk_venv, SPIN_SDK_REQUIREMENTS};
use devkit::spin_build::build_components;
use devkit::workspace::target_dir;
use e2e::{fnhost_bin, onnx_compiled_cache, root, Host, Start, TempDir};
use serde_json::json;

/// The scikit-learn logistic regression the repository ships: a model file as a data scientist
/// would have one.
fn model_file() -> PathBuf {
    root().join("models/iris/onnx/model.onnx")
}

/// Runs `fnhost new ARGS` in `dir`; returns (success, stdout + stderr).
fn fnhost_new(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(fnhost_bin())
        .current_dir(dir)
        .arg("new")
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    (out.status.success(), e2e::output_text(&out))
}

fn must_new(dir: &Path, args: &[&str]) -> String {
    let (ok, text) = fnhost_new(dir, args);
    assert!(ok, "fnhost new {args:?} failed:\n{text}");
    text
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// `manifest` is valid against Spin's manifest JSON Schema (as `cargo xtask test` checks the
/// repository's own spin.toml).
fn assert_valid_for_spin(manifest: &Path) {
    let script = "import json, sys, tomllib, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  jsonschema.validate(tomllib.load(open(sys.argv[2], 'rb')), schema)\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(root().join("tests/spec/spin-manifest-v2.schema.json"))
        .arg(manifest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} is not valid for Spin:\n{}",
        manifest.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn each_template_scaffolds_builds_serves_and_answers() {
    let dir = TempDir::new("new-app");
    let app = dir.path();
    let model = model_file();
    let text = must_new(
        app,
        &["onnx-model", "flowers", "--model", model.to_str().unwrap()],
    );
    assert!(text.contains("spin.toml"), "{text}");
    must_new(app, &["http-rust", "hello"]);
    must_new(app, &["model-rust", "scorer"]);
    assert_valid_for_spin(&app.join("spin.toml"));

    // The metadata comes from the graph: input, classifier outputs, class labels.
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(app.join("models/flowers/model.json")).unwrap())
            .unwrap();
    assert_eq!(metadata["name"], "flowers");
    assert_eq!(metadata["input"], "input");
    assert_eq!(
        metadata["outputs"],
        json!({"label": "label", "probabilities": "probabilities"})
    );
    assert_eq!(metadata["classes"], json!(["0", "1", "2"]));

    // Built as `cargo xtask build` builds components: the manifest's build commands. The
    // Rust components' target directory is kept between runs (their dependencies compile
    // once), and the repository's lock file pins the versions it builds with.
    let kept = target_dir().join("e2e-new-target");
    std::fs::create_dir_all(&kept).unwrap();
    std::os::unix::fs::symlink(&kept, app.join("target")).unwrap();
    std::fs::copy(root().join("Cargo.lock"), app.join("Cargo.lock")).unwrap();
    let built = build_components(&app.join("spin.toml"), &[]).unwrap();
    assert_eq!(built, ["hello", "scorer"]);

    let mut opts = Start::new(app);
    opts.cache_dir = Some(onnx_compiled_cache());
    let host = Host::try_start(opts).unwrap_or_else(|e| panic!("{e}"));

    let infer = host.request(
        "POST",
        "/v2/models/flowers/infer",
        &[("content-type", "application/json")],
        Some(
            json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                               "data": [5.1, 3.5, 1.4, 0.2]}]})
            .to_string()
            .as_bytes(),
        ),
    );
    assert_eq!(infer.status, 200, "{}", infer.text());
    let outputs = &infer.json()["outputs"];
    assert_eq!(outputs[0]["name"], "label");
    assert_eq!(outputs[0]["data"], json!([0]), "setosa is class 0");
    let v1 = host.request(
        "POST",
        "/v1/models/flowers:predict",
        &[("content-type", "application/json")],
        Some(br#"{"instances":[[6.7,3.0,5.2,2.3]]}"#),
    );
    assert_eq!(v1.status, 200, "{}", v1.text());
    assert_eq!(v1.json()["predictions"], json!(["2"]));
    assert_eq!(host.get("/v2/health/ready").status, 200);
    assert_eq!(host.get("/v2/models/flowers").json()["name"], "flowers");

    let hello = host.get("/hello");
    assert_eq!(hello.status, 200);
    assert_eq!(hello.text(), "hello from hello: GET /hello\n");
    assert_eq!(hello.header("content-length"), Some("29"), "not chunked");

    // z = -1 + 1.5·2 - 0.5·2 = 1 with the template's model.json.
    let score = host.get("/scorer?x1=2&x2=2");
    assert_eq!(score.status, 200, "{}", score.text());
    let p = score.json()["score"].as_f64().unwrap();
    assert!((p - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12, "{p}");
    assert_eq!(score.json()["model"], "scorer@1");
    let length = score.body.len().to_string();
    assert_eq!(
        score.header("content-length"),
        Some(length.as_str()),
        "not chunked"
    );
    assert_eq!(host.get("/scorer?x1=2").status, 400);
}

/// The package pins of a `requirements.txt` (its lines but comments and blank ones).
fn pins(requirements: &Path) -> Vec<String> {
    std::fs::read_to_string(requirements)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// http-python, as a user has it: scaffolded, built by the manifest's build command in the
/// activated venv its requirements.txt describes, served, called with good and bad input.
#[test]
fn http_python_scaffolds_builds_serves_and_answers() {
    let dir = TempDir::new("new-python");
    let app = dir.path();
    let text = must_new(app, &["http-python", "greeter"]);
    assert!(
        text.contains("pip install -r greeter/requirements.txt"),
        "the build's venv is not explained:\n{text}"
    );
    assert_valid_for_spin(&app.join("spin.toml"));
    // The venv the repository builds Spin-SDK components in holds what the template pins.
    assert_eq!(
        pins(&app.join("greeter/requirements.txt")),
        pins(&root().join(SPIN_SDK_REQUIREMENTS))
    );

    let venv = spin_sdk_venv().expect("the Spin Python SDK venv");
    let built = build_components(&app.join("spin.toml"), &activated(&venv).unwrap()).unwrap();
    assert_eq!(built, ["greeter"]);

    // A 25 MB Python component takes a core about half a minute to compile; the cache is kept
    // between runs, so an unchanged template's module loads from it.
    let cache = target_dir().join("e2e-new-python-cache");
    let mut opts = Start::new(app);
    opts.cache_dir = Some(&cache);
    opts.ready_timeout = Duration::from_secs(600);
    let host = Host::try_start(opts).unwrap_or_else(|e| panic!("{e}"));

    let hello = host.get("/greeter/some/where?who=Ada");
    assert_eq!(hello.status, 200, "{}", hello.text());
    assert_eq!(hello.header("content-type"), Some("application/json"));
    assert_eq!(
        hello.json(),
        json!({"component": "greeter", "path": "/greeter/some/where", "who": "Ada",
               "greeting": "hello, Ada"})
    );
    for (query, says) in [
        ("", "missing query parameter `who`"),
        ("?who=", "query parameter `who` must not be empty"),
        ("?who=a&who=b", "query parameter `who` must be given once"),
    ] {
        let bad = host.get(&format!("/greeter{query}"));
        assert_eq!(bad.status, 400, "/greeter{query}: {}", bad.text());
        assert_eq!(bad.header("content-type"), Some("application/json"));
        assert!(
            bad.error().contains(says),
            "/greeter{query}: {}",
            bad.text()
        );
    }
}

#[test]
fn an_existing_manifest_keeps_its_comments_and_order() {
    let dir = TempDir::new("new-existing");
    let original = std::fs::read_to_string(root().join("spin.toml")).unwrap();
    dir.write("spin.toml", &original);
    must_new(
        dir.path(),
        &[
            "onnx-model",
            "flowers",
            "--model",
            model_file().to_str().unwrap(),
        ],
    );
    let edited = std::fs::read_to_string(dir.join("spin.toml")).unwrap();
    assert!(
        edited.starts_with(&original),
        "the manifest was rewritten, not extended:\n{edited}"
    );
    assert!(edited.contains("component = \"flowers\""), "{edited}");
    assert_valid_for_spin(&dir.join("spin.toml"));
}

#[test]
fn refusals_say_why_and_write_nothing() {
    let dir = TempDir::new("new-refusals");
    let app = dir.path();
    let model = model_file();
    let model = model.to_str().unwrap();
    must_new(app, &["onnx-model", "flowers", "--model", model]);
    let not_onnx = dir.write("notes.txt", "not a model");
    // A directory of the user's that a Python component would be written into.
    dir.write("petals/app.py", "print('mine')\n");
    let before = snapshot(app);
    for (args, says) in [
        (
            vec!["onnx-model", "flowers", "--model", model],
            "component `flowers` already exists",
        ),
        (
            vec!["http-rust", "flowers"],
            "component `flowers` already exists",
        ),
        (
            vec![
                "onnx-model",
                "petals",
                "--model",
                not_onnx.to_str().unwrap(),
            ],
            "is not an ONNX model fnhost can serve",
        ),
        (
            vec!["onnx-model", "Bad_Name", "--model", model],
            "\"Bad_Name\" is not a component id",
        ),
        (
            vec!["model-rust", "9lives"],
            "\"9lives\" is not a component id",
        ),
        (
            vec!["http-python", "flowers"],
            "component `flowers` already exists",
        ),
        (
            vec!["http-python", "petals"],
            "petals/app.py already exists; `fnhost new` does not overwrite files",
        ),
        (
            vec!["http-python", "Py_Thing"],
            "\"Py_Thing\" is not a component id",
        ),
        (
            vec!["onnx-model", "petals"],
            "onnx-model needs the model file",
        ),
        (
            vec!["onnx-model", "petals", "--model", "/no/such/file.onnx"],
            "reading /no/such/file.onnx",
        ),
    ] {
        let (ok, text) = fnhost_new(app, &args);
        assert!(!ok, "{args:?} succeeded:\n{text}");
        assert!(
            text.contains(says),
            "{args:?}: expected `{says}` in:\n{text}"
        );
        assert_eq!(snapshot(app), before, "{args:?} wrote something");
    }
}
