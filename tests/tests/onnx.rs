//! The generic ONNX model component (`onnx_model.wasm`) served by the real host: the Open
//! Inference Protocol and KServe V1, bad input named field by field, the iris contract answered
//! exactly as the iris function answers it, a model replaced on disk (and a half-replaced pair
//! refused; a settled ConfigMap-style mount swapped for same-size files), a missing or corrupt model while other routes serve, and every scikit-learn
//! estimator's answers equal to scikit-learn's and onnxruntime's (`conformance.py`).
//!
//! The last two need the Python environment of `functions/onnx/python`; it is created in the
//! target directory on first use (`onnx_venv::ensure`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::{onnx_compiled_cache, root, wasm, Host, Reply, Start, TempDir};
use serde_json::{json, Value};

/// The scikit-learn logistic regression exported for the iris route.
const IRIS_MODEL: &str = "models/iris/onnx";
const IRIS_NAME: &str = "iris-logistic-regression";

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// The venv's Python, created if missing.
fn python() -> PathBuf {
    onnx_venv::ensure(&root(), &target_dir()).unwrap_or_else(|e| panic!("{e:#}"))
}

fn script(name: &str) -> PathBuf {
    root().join(onnx_venv::SCRIPTS).join(name)
}

/// Runs a script of `functions/onnx/python` in the venv; panics with its output on failure.
fn run_script(name: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .arg(script(name))
        .args(args)
        .output()
        .unwrap();
    let text = e2e::output_text(&out);
    assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
    text
}

/// Trains models NAMES into `dir/models/NAME`, keeping the estimators for conformance.py.
fn train(dir: &TempDir, names: &[&str]) -> PathBuf {
    let out = dir.join("models");
    let mut args = vec!["--out", out.to_str().unwrap(), "--with-estimator", "--only"];
    args.extend(names);
    run_script("train.py", &args);
    out
}

fn copy_model(from: &Path, dir: &TempDir, to: &str) {
    for file in ["model.onnx", "model.json"] {
        dir.copy_in(&from.join(file), &format!("{to}/{file}"));
    }
}

/// `onnx_model.wasm`, which `cargo xtask build` builds with the other functions.
fn onnx_wasm() -> PathBuf {
    wasm("onnx_model")
}

/// Starts fnhost in `dir` on the shared compiled-module cache.
fn start(dir: &TempDir) -> Host {
    let mut opts = Start::new(dir.path());
    opts.cache_dir = Some(onnx_compiled_cache());
    Host::try_start(opts).unwrap_or_else(|e| panic!("{e}"))
}

/// One onnx component per (name, model directory, routes); `extra` is appended to each
/// component's `tool.fnhost` table.
fn serve(dir: &TempDir, components: &[(&str, &str, &[&str])], extra: &str) -> Host {
    dir.copy_in(&onnx_wasm(), "onnx_model.wasm");
    let mut manifest =
        String::from("spin_manifest_version = 2\n[application]\nname = \"e2e-onnx\"\n");
    for (name, _, routes) in components {
        for route in *routes {
            manifest += &format!("[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"{name}\"\n");
        }
    }
    for (name, model_dir, _) in components {
        manifest += &format!(
            "[component.{name}]\nsource = \"onnx_model.wasm\"\n\
             files = [{{ source = \"{model_dir}\", destination = \"/model\" }}]\n\
             [component.{name}.tool.fnhost]\n{extra}\n"
        );
    }
    dir.write("spin.toml", manifest);
    start(dir)
}

fn post_json(host: &Host, path: &str, body: &Value) -> Reply {
    host.request(
        "POST",
        path,
        &[("content-type", "application/json")],
        Some(body.to_string().as_bytes()),
    )
}

fn infer_body(rows: &[[f64; 4]]) -> Value {
    json!({"inputs": [{"name": "input", "shape": [rows.len(), 4], "datatype": "FP32",
                        "data": rows.iter().flatten().collect::<Vec<_>>()}]})
}

const SETOSA: [f64; 4] = [5.1, 3.5, 1.4, 0.2];
const VERSICOLOR: [f64; 4] = [6.4, 3.2, 4.5, 1.5];
const VIRGINICA: [f64; 4] = [7.7, 3.0, 6.1, 2.3];

fn iris_host(dir: &TempDir) -> Host {
    copy_model(&root().join(IRIS_MODEL), dir, "models/iris");
    serve(
        dir,
        &[(
            "iris",
            "models/iris",
            &["/v2/...", "/v1/...", "/api/v01/classify"],
        )],
        "",
    )
}

#[test]
fn open_inference_protocol_and_kserve_v1() {
    let dir = TempDir::new("onnx-protocols");
    let host = iris_host(&dir);

    assert_eq!(host.get("/v2/health/live").json(), json!({"live": true}));
    let ready = host.get("/v2/health/ready");
    assert_eq!((ready.status, ready.json()), (200, json!({"ready": true})));
    assert_eq!(host.get("/v2").json()["name"], "fnhost-onnx");

    let meta = host.get(&format!("/v2/models/{IRIS_NAME}"));
    assert_eq!(meta.status, 200, "{}", meta.text());
    assert_eq!(
        meta.json(),
        json!({"name": IRIS_NAME, "versions": ["1"], "platform": "onnx",
               "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
               "outputs": [{"name": "label", "datatype": "INT64", "shape": [-1]},
                           {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]})
    );
    for (path, status) in [
        (format!("/v2/models/{IRIS_NAME}/ready"), 200),
        (format!("/v2/models/{IRIS_NAME}/versions/1/ready"), 200),
        (format!("/v2/models/{IRIS_NAME}/versions/2/ready"), 404),
        ("/v2/models/other/ready".to_string(), 404),
        (format!("/v1/models/{IRIS_NAME}"), 200),
    ] {
        let r = host.get(&path);
        assert_eq!(r.status, status, "{path}: {}", r.text());
    }
    assert!(host
        .get("/v2/models/other")
        .error()
        .contains(&format!("this endpoint serves `{IRIS_NAME}`")));

    let mut body = infer_body(&[SETOSA, VERSICOLOR, VIRGINICA]);
    body["id"] = json!("req-7");
    let r = post_json(&host, &format!("/v2/models/{IRIS_NAME}/infer"), &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (&v["model_name"], &v["model_version"], &v["id"]),
        (&json!(IRIS_NAME), &json!("1"), &json!("req-7"))
    );
    assert_eq!(
        v["outputs"][0],
        json!({"name": "label", "datatype": "INT64", "shape": [3], "data": [0, 1, 2]})
    );
    let probabilities = &v["outputs"][1];
    assert_eq!(
        (&probabilities["name"], &probabilities["shape"]),
        (&json!("probabilities"), &json!([3, 3]))
    );
    let p: Vec<f64> = serde_json::from_value(probabilities["data"].clone()).unwrap();
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5, "{row:?}");
    }

    // Nested data is the same tensor; `outputs` chooses what comes back.
    let nested = json!({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32",
                                     "data": [SETOSA, VIRGINICA]}],
                        "outputs": [{"name": "label"}]});
    let r = post_json(
        &host,
        &format!("/v2/models/{IRIS_NAME}/versions/1/infer"),
        &nested,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["outputs"],
        json!([{"name": "label", "datatype": "INT64", "shape": [2], "data": [0, 2]}])
    );

    // KServe V1: class names, array or named instances.
    let r = post_json(
        &host,
        &format!("/v1/models/{IRIS_NAME}:predict"),
        &json!({"instances": [SETOSA, {"sl": 7.7, "sw": 3.0, "pl": 6.1, "pw": 2.3}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"predictions": ["Iris setosa", "Iris virginica"]})
    );
}

#[test]
fn bad_input_is_refused_naming_the_field_and_the_rule() {
    let dir = TempDir::new("onnx-errors");
    let host = iris_host(&dir);
    let infer = format!("/v2/models/{IRIS_NAME}/infer");
    let tensor = |name: &str, shape: Value, datatype: &str, data: Value| json!({"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}]});
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            tensor("x", json!([1, 4]), "FP32", json!(SETOSA)),
            400,
            "`inputs[0].name` is `x`; the model's inputs are `input`",
        ),
        (
            tensor("input", json!([1, 4]), "FP64", json!(SETOSA)),
            400,
            "`inputs[0].datatype` is `FP64`; input `input` is FP32",
        ),
        (
            tensor("input", json!([4]), "FP32", json!(SETOSA)),
            400,
            "`inputs[0].shape` is [4]; input `input` has shape [-1, 4] (-1: any size)",
        ),
        (
            tensor("input", json!([1, 3]), "FP32", json!([5.1, 3.5, 1.4])),
            400,
            "`inputs[0].shape` is [1, 3]; input `input` has shape [-1, 4]",
        ),
        (
            tensor("input", json!([2, 4]), "FP32", json!(SETOSA)),
            400,
            "`inputs[0].data` has 4 elements; shape [2, 4] needs 8",
        ),
        (
            tensor("input", json!([1, 4]), "FP32", json!([5.1, 3.5, 1e39, 0.2])),
            400,
            "`inputs[0].data[2]` must be finite in FP32, got 1000000000000000000000000000000000000000",
        ),
        (
            tensor(
                "input",
                json!([1, 4]),
                "FP32",
                json!([5.1, "3.5", 1.4, 0.2]),
            ),
            400,
            "`inputs[0].data[1]` must be a number for datatype FP32, got a string",
        ),
        (
            tensor("input", json!([1, 4]), "FP32", json!([5.1, 3.5, 1.4, 0])),
            400,
            "`inputs[0].data[3] (pw)` must be greater than 0 cm, got 0",
        ),
        (
            json!({"inputs": []}),
            400,
            "`inputs` has no tensor for input `input`",
        ),
        (
            json!({"inputs": [{"name": "input", "datatype": "FP32", "data": []}]}),
            400,
            "missing field `shape`",
        ),
        (
            json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                               "data": SETOSA}], "outputs": [{"name": "species"}]}),
            400,
            "`outputs[0].name` is `species`; the model's outputs are `label`, `probabilities`",
        ),
        (
            tensor("input", json!([10_001, 4]), "FP32", json!([])),
            413,
            "`inputs[0]` has 10001 rows; at most 10000 are allowed per request",
        ),
    ];
    for (body, status, message) in cases {
        let r = post_json(&host, &infer, &body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.error().contains(message), "{body}: {}", r.error());
    }
    let mut duplicated = infer_body(&[SETOSA]);
    let again = duplicated["inputs"][0].clone();
    duplicated["inputs"].as_array_mut().unwrap().push(again);
    assert!(post_json(&host, &infer, &duplicated)
        .error()
        .contains("`inputs[1]`: input `input` is given more than once"));

    let r = host.request(
        "POST",
        &infer,
        &[("content-type", "application/json")],
        Some(b"{"),
    );
    assert_eq!(r.status, 400);
    assert!(r
        .error()
        .starts_with("request body is not a valid inference request"));
    let r = host.request(
        "POST",
        &infer,
        &[("content-type", "text/plain")],
        Some(b"{}"),
    );
    assert_eq!(r.status, 415, "{}", r.text());
    let r = host.get(&infer);
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = post_json(
        &host,
        &format!("/v1/models/{IRIS_NAME}:predict"),
        &json!({"instances": [[1, 2, 3]]}),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("`instances[0]` has 3 values"),
        "{}",
        r.error()
    );
    assert_eq!(host.get("/v2/models/x/explain").status, 404);
}

#[test]
fn iris_contract_is_answered_exactly_as_the_iris_function_does() {
    let dir = TempDir::new("onnx-iris");
    copy_model(&root().join(IRIS_MODEL), &dir, "models/onnx");
    dir.copy_in(
        &root().join("models/iris/v1/model.json"),
        "models/linfa/model.json",
    );
    dir.copy_in(&onnx_wasm(), "onnx_model.wasm");
    dir.copy_in(&wasm("iris"), "iris.wasm");
    dir.write(
        "spin.toml",
        r#"spin_manifest_version = 2
[application]
name = "e2e-onnx-iris"
[[trigger.http]]
route = "/api/v01/classify"
component = "linfa"
[[trigger.http]]
route = "/api/onnx/classify"
component = "onnx"
[component.linfa]
source = "iris.wasm"
files = [{ source = "models/linfa", destination = "/model" }]
[component.onnx]
source = "onnx_model.wasm"
files = [{ source = "models/onnx", destination = "/model" }]
"#,
    );
    let host = start(&dir);
    let both = |method: &str, query: &str, content_type: Option<&str>, body: Option<&[u8]>| {
        let headers: Vec<(&str, &str)> = content_type
            .map(|c| ("content-type", c))
            .into_iter()
            .collect();
        (
            host.request(method, &format!("/api/v01/classify{query}"), &headers, body),
            host.request(
                method,
                &format!("/api/onnx/classify{query}"),
                &headers,
                body,
            ),
        )
    };

    // Every refusal: same status, same body, byte for byte.
    // (method, query, content type, body)
    type Refusal<'a> = (&'a str, String, Option<&'a str>, Option<Vec<u8>>);
    let mut refusals: Vec<Refusal> = [
        "?sl=5.1&sw=3.5&pl=1.4",
        "?sl=5.1&sw=3.5&pl=1.4&pw=0.2&pw=0.3",
        "?sl=5.1&sw=3.5&pl=1.4&pw=0.2&x=1",
        "?sl=&sw=3.5&pl=1.4&pw=0.2",
        "?sl=abc&sw=3.5&pl=1.4&pw=0.2",
        "?sl=NaN&sw=3.5&pl=1.4&pw=0.2",
        "?sl=inf&sw=3.5&pl=1.4&pw=0.2",
        "?sl=-inf&sw=3.5&pl=1.4&pw=0.2",
        "?sl=0&sw=3.5&pl=1.4&pw=0.2",
        "?sl=100.1&sw=3.5&pl=1.4&pw=0.2",
        "?sl=5.1&sw=3.5&pl=1.4&pw=%2E",
        "",
    ]
    .iter()
    .map(|q| ("GET", q.to_string(), None, None))
    .collect();
    for body in [
        "{",
        "[]",
        "{}",
        r#"{"instances": 3}"#,
        r#"{"instances": []}"#,
        r#"{"instances": [[1,2,3]], "x": 1}"#,
        r#"{"instances": [[1,2,3]]}"#,
        r#"{"instances": [[1,2,3,"4"]]}"#,
        r#"{"instances": [[1,2,3,0]]}"#,
        r#"{"instances": [{"sl":1,"sw":1,"pl":1}]}"#,
        r#"{"instances": [{"sl":1,"sw":1,"pl":1,"pw":1,"x":1}]}"#,
        r#"{"instances": [{"sl":1,"sw":1,"pl":1,"pw":null}]}"#,
        r#"{"instances": [true]}"#,
    ] {
        refusals.push((
            "POST",
            String::new(),
            Some("application/json"),
            Some(body.into()),
        ));
    }
    let too_many = format!(
        "{{\"instances\":[{}]}}",
        vec!["[1,1,1,1]"; 10_001].join(",")
    );
    refusals.push((
        "POST",
        String::new(),
        Some("application/json"),
        Some(too_many.into()),
    ));
    refusals.push((
        "POST",
        String::new(),
        Some("text/plain"),
        Some(b"{}".to_vec()),
    ));
    refusals.push(("POST", String::new(), None, Some(b"{}".to_vec())));
    refusals.push(("PUT", String::new(), None, Some(b"".to_vec())));
    refusals.push(("get", String::new(), None, None));
    for (method, query, content_type, body) in &refusals {
        let (linfa, onnx) = both(method, query, *content_type, body.as_deref());
        assert!(linfa.status >= 400, "{method} {query}: {}", linfa.text());
        assert_eq!(
            (onnx.status, onnx.text(), onnx.header("allow")),
            (linfa.status, linfa.text(), linfa.header("allow")),
            "{method} {query} {:?}",
            body.as_deref().map(String::from_utf8_lossy)
        );
    }

    // Answers: the same shape, key order and species for the three classic flowers.
    for (flower, species) in [
        (SETOSA, "Iris setosa"),
        (VERSICOLOR, "Iris versicolor"),
        (VIRGINICA, "Iris virginica"),
    ] {
        let q = format!(
            "?sl={}&sw={}&pl={}&pw={}",
            flower[0], flower[1], flower[2], flower[3]
        );
        let (linfa, onnx) = both("GET", &q, None, None);
        assert_eq!((linfa.status, onnx.status), (200, 200), "{}", onnx.text());
        let prefix = format!("{{\"species\":\"{species}\",\"probabilities\":{{\"Iris setosa\":");
        assert!(linfa.text().starts_with(&prefix), "{}", linfa.text());
        assert!(onnx.text().starts_with(&prefix), "{}", onnx.text());
        assert!(onnx
            .text()
            .ends_with(&format!("}},\"model\":\"{IRIS_NAME}@1\"}}")));
        let keys = |r: &Reply| -> Vec<String> {
            r.json()["probabilities"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert_eq!(keys(&onnx), keys(&linfa));
    }
    let body = json!({"instances": [SETOSA, {"sl": 7.7, "sw": 3.0, "pl": 6.1, "pw": 2.3}]});
    let (linfa, onnx) = both(
        "POST",
        "",
        Some("application/json"),
        Some(body.to_string().as_bytes()),
    );
    let species = |r: &Reply| -> Vec<Value> {
        r.json()["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["species"].clone())
            .collect()
    };
    assert_eq!((linfa.status, onnx.status), (200, 200), "{}", onnx.text());
    assert_eq!(species(&onnx), species(&linfa));
    assert_eq!(onnx.json()["model"], format!("{IRIS_NAME}@1"));
}

fn load_timing(r: &Reply) -> bool {
    r.header("server-timing")
        .unwrap_or_default()
        .contains("load;dur=")
}

#[test]
fn a_model_replaced_on_disk_answers_the_next_request_and_a_half_replaced_pair_is_refused() {
    let dir = TempDir::new("onnx-replace");
    let trained = train(&dir, &["iris-random-forest"]);
    copy_model(&root().join(IRIS_MODEL), &dir, "served");
    // One reused instance: its cached model must still follow the files.
    let host = serve(
        &dir,
        &[("m", "served", &["/v2/..."])],
        "instance_reuse = 1000",
    );
    let infer = |name: &str| {
        post_json(
            &host,
            &format!("/v2/models/{name}/infer"),
            &infer_body(&[VERSICOLOR]),
        )
    };

    let first = infer(IRIS_NAME);
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(load_timing(&first), "the first request loads the model");
    let second = infer(IRIS_NAME);
    assert_eq!(second.status, 200);
    assert!(
        !load_timing(&second),
        "a reused instance answers from its cached model: {:?}",
        second.header("server-timing")
    );

    // New metadata alone (same model.onnx): the next request reads it.
    let json = std::fs::read_to_string(root().join(IRIS_MODEL).join("model.json")).unwrap();
    let v2 = json.replacen("\"version\": \"1\"", "\"version\": \"2\"", 1);
    assert_ne!(json, v2);
    dir.write("served/model.json.partial", &v2);
    std::fs::rename(
        dir.join("served/model.json.partial"),
        dir.join("served/model.json"),
    )
    .unwrap();
    let r = infer(IRIS_NAME);
    assert_eq!(r.json()["model_version"], "2", "{}", r.text());

    // model.onnx replaced, model.json not yet: 503 until both agree, never a mix.
    dir.copy_in(
        &trained.join("iris-random-forest/model.onnx"),
        "served/model.onnx",
    );
    let r = infer(IRIS_NAME);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.error().contains("disagree"), "{}", r.error());
    assert_eq!(host.get("/v2/health/ready").status, 503);
    dir.copy_in(
        &trained.join("iris-random-forest/model.json"),
        "served/model.json",
    );
    let r = infer("iris-random-forest");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(load_timing(&r));
    assert_eq!(r.json()["outputs"][0]["data"], json!([1]));

    // A half-written model.onnx (truncated in place) is refused the same way.
    let full = std::fs::read(dir.join("served/model.onnx")).unwrap();
    std::fs::write(dir.join("served/model.onnx"), &full[..full.len() / 2]).unwrap();
    let r = infer("iris-random-forest");
    assert_eq!(r.status, 503, "{}", r.text());
    std::fs::write(dir.join("served/model.onnx"), &full).unwrap();
    assert_eq!(infer("iris-random-forest").status, 200);

    // Rewritten in place at the same size: only the modification time tells.
    let mut changed = full.clone();
    let last = changed.len() - 1;
    changed[last] ^= 1;
    std::fs::write(dir.join("served/model.onnx"), &changed).unwrap();
    let r = infer("iris-random-forest");
    assert_eq!(r.status, 503, "{}", r.text());
    std::fs::write(dir.join("served/model.onnx"), &full).unwrap();
    assert_eq!(infer("iris-random-forest").status, 200);
}

/// Once the files' times are settled, a reused instance only stats them (fn-file-stamp's rule):
/// a model mounted the way a Kubernetes ConfigMap mounts it (each file a symlink through `..data`
/// into a timestamped directory, updated by swapping `..data`) still changes the next answer
/// when the new files have the very sizes and modification times of the old, and so does a
/// settled `model.json` rewritten in place at the same size.
#[test]
fn a_settled_configmap_style_model_swapped_for_same_size_files_answers_next() {
    let dir = TempDir::new("onnx-configmap");
    let json = std::fs::read_to_string(root().join(IRIS_MODEL).join("model.json")).unwrap();
    let v2 = json.replacen("\"version\": \"1\"", "\"version\": \"2\"", 1);
    let v3 = json.replacen("\"version\": \"1\"", "\"version\": \"3\"", 1);
    assert!(v2 != json && v2.len() == json.len() && v3.len() == json.len());
    copy_model(&root().join(IRIS_MODEL), &dir, "served/..2026_12_01_a");
    copy_model(&root().join(IRIS_MODEL), &dir, "served/..2026_12_01_b");
    dir.write("served/..2026_12_01_b/model.json", &v2);
    for file in ["model.onnx", "model.json"] {
        let a = dir.join("served/..2026_12_01_a").join(file);
        let modified = std::fs::metadata(&a).unwrap().modified().unwrap();
        let b = std::fs::File::options()
            .write(true)
            .open(dir.join("served/..2026_12_01_b").join(file))
            .unwrap();
        b.set_modified(modified).unwrap();
    }
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, dir.join("served").join(name)).unwrap()
    };
    link("..2026_12_01_a", "..data");
    link("..data/model.onnx", "model.onnx");
    link("..data/model.json", "model.json");
    let host = serve(
        &dir,
        &[("m", "served", &["/v2/..."])],
        "instance_reuse = 1000",
    );
    let version = || {
        let r = host.get(&format!("/v2/models/{IRIS_NAME}"));
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["versions"][0].as_str().unwrap().to_owned()
    };
    let settle = || std::thread::sleep(fn_file_stamp::TIMESTAMP_SLACK + Duration::from_millis(500));

    settle();
    for _ in 0..3 {
        assert_eq!(version(), "1");
    }
    // The kubelet's update: a new `..data` link moved over the old one.
    link("..2026_12_01_b", "..data_tmp");
    std::fs::rename(dir.join("served/..data_tmp"), dir.join("served/..data")).unwrap();
    assert_eq!(version(), "2", "the next request sees the swap");

    settle();
    for _ in 0..3 {
        assert_eq!(version(), "2");
    }
    std::fs::write(dir.join("served/..2026_12_01_b/model.json"), &v3).unwrap();
    assert_eq!(version(), "3", "the next request sees the rewrite");
}

#[test]
fn a_missing_or_corrupt_model_is_503_while_other_routes_serve() {
    let dir = TempDir::new("onnx-503");
    copy_model(&root().join(IRIS_MODEL), &dir, "good");
    std::fs::create_dir_all(dir.join("missing")).unwrap();
    dir.write("corrupt/model.onnx", b"not a protobuf \xff\xff\xff");
    dir.copy_in(
        &root().join(IRIS_MODEL).join("model.json"),
        "half/model.json",
    );
    dir.write("half/model.onnx", b"");
    let host = serve(
        &dir,
        &[
            ("good", "good", &["/good"]),
            ("missing", "missing", &["/missing"]),
            ("corrupt", "corrupt", &["/corrupt"]),
            ("half", "half", &["/half"]),
        ],
        "",
    );
    let q = "?sl=5.1&sw=3.5&pl=1.4&pw=0.2";
    for (route, message) in [
        (
            "/missing",
            "no model available: model missing: cannot read /model/model.onnx",
        ),
        (
            "/corrupt",
            "no model available: model corrupt: model.onnx is not an ONNX model",
        ),
        ("/half", "disagree"),
    ] {
        let r = host.get(&format!("{route}{q}"));
        assert_eq!(r.status, 503, "{route}: {}", r.text());
        assert!(r.error().contains(message), "{route}: {}", r.error());
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
    let r = host.get(&format!("/good{q}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["species"], "Iris setosa");
}

#[test]
fn every_estimator_answers_as_scikit_learn_and_onnxruntime() {
    let dir = TempDir::new("onnx-conformance");
    let out = run_script("train.py", &["--list"]);
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 6, "{out}");
    let models = train(&dir, &names);
    let routes: Vec<(String, String, Vec<String>)> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                format!("models/{n}"),
                vec![format!("/v2/models/{n}/...")],
            )
        })
        .collect();
    let route_refs: Vec<Vec<&str>> = routes
        .iter()
        .map(|(_, _, r)| r.iter().map(String::as_str).collect())
        .collect();
    let components: Vec<(&str, &str, &[&str])> = routes
        .iter()
        .zip(&route_refs)
        .map(|((c, d, _), r)| (c.as_str(), d.as_str(), r.as_slice()))
        .collect();
    let host = serve(&dir, &components, "");
    let report = run_script(
        "conformance.py",
        &["--models", models.to_str().unwrap(), "--url", &host.url("")],
    );
    for name in &names {
        assert!(report.contains(&format!("{name}: conforms")), "{report}");
    }
}
