//! The two functions served by the real host over HTTP: pi (boundaries up to 10^6 digits, both
//! versions, caching headers, bad input) and iris (one example per species, the whole data set
//! as a batch, bad input, a model file replaced on disk, a missing model); answers carry their
//! length. Only pi is compiled with wasm's wide-arithmetic proposal.

use std::path::Path;
use std::time::Duration;

use e2e::{pi_decimals, root, wait_until, wasm, Host, TempDir};
use sha2::{Digest, Sha256};

fn fixture() -> (TempDir, Host) {
    let dir = TempDir::new("functions");
    dir.copy_in(&wasm("pi_chudnovsky"), "pi_chudnovsky.wasm");
    dir.copy_in(&wasm("pi_picrunch"), "pi_picrunch.wasm");
    dir.copy_in(&wasm("iris"), "iris.wasm");
    dir.copy_in(
        &root().join("models/iris/v1/model.json"),
        "models/iris/model.json",
    );
    dir.write(
        "spin.toml",
        r#"spin_manifest_version = 2
[application]
name = "e2e-functions"
[application.tool.fnhost]
request_timeout = "60s"
[[trigger.http]]
route = "/api/v0/pi"
component = "pi"
[[trigger.http]]
route = "/api/v1/pi"
component = "picrunch"
[[trigger.http]]
route = "/api/v01/classify"
component = "iris"
[[trigger.http]]
route = "/api/v01-reused/classify"
component = "iris-reused"
[component.pi]
source = "pi_chudnovsky.wasm"
[component.picrunch]
source = "pi_picrunch.wasm"
variables = { max_ndigits = "100000" }
[component.iris]
source = "iris.wasm"
files = [{ source = "models/iris", destination = "/model" }]
# The same, with instances that serve many requests (and keep the model they parsed).
[component.iris-reused]
source = "iris.wasm"
files = [{ source = "models/iris", destination = "/model" }]
[component.iris-reused.tool.fnhost]
instance_reuse = 64
"#,
    );
    let host = Host::start(dir.path());
    (dir, host)
}

fn pi_of(host: &Host, route: &str, n: usize) -> String {
    let r = host.get(&format!("{route}?ndigits={n}"));
    assert_eq!(r.status, 200, "{route} {n}: {}", r.text());
    let v = r.json();
    assert_eq!(v["ndigits"], n);
    v["pi"].as_str().unwrap().to_string()
}

#[test]
fn pi_v2_boundaries_up_to_a_million_digits() {
    let (_dir, host) = fixture();
    for n in [
        0usize, 1, 2, 21, 22, 23, 99, 100, 1000, 4299, 4300, 4301, 10_000, 100_000,
    ] {
        let want = if n == 0 {
            "3".to_string()
        } else {
            format!("3.{}", pi_decimals(n))
        };
        assert_eq!(pi_of(&host, "/api/v0/pi", n), want, "ndigits={n}");
    }
    // The Feynman point: six 9s from decimal 762; truncation must never round them up.
    let at = pi_of(&host, "/api/v0/pi", 765);
    assert!(at.ends_with("999"), "{}", &at[at.len() - 10..]);
    let million = pi_of(&host, "/api/v0/pi", 1_000_000);
    let decimals = million.strip_prefix("3.").unwrap();
    assert_eq!(
        hex::encode(Sha256::digest(decimals.as_bytes())),
        "7806ee47461b49ef1f578e14461b2c83c09c6d7a9a914275da1d71e9cbbf7069"
    );
    assert!(decimals.ends_with("22090106105779458151"));
    let r = host.get("/api/v0/pi?ndigits=1000001");
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("1000000"),
        "names the maximum: {}",
        r.error()
    );
}

#[test]
fn pi_v1_picrunch_is_exact_to_a_hundred_thousand_digits() {
    let (_dir, host) = fixture();
    for n in [0usize, 1, 22, 99, 1000, 4301, 10_000] {
        let want = if n == 0 {
            "3".to_string()
        } else {
            format!("3.{}", pi_decimals(n))
        };
        assert_eq!(pi_of(&host, "/api/v1/pi", n), want, "v1 ndigits={n}");
    }
    assert_eq!(
        pi_of(&host, "/api/v1/pi", 100_000),
        format!("3.{}", pi_decimals(100_000))
    );
    let r = host.get("/api/v1/pi?ndigits=100001");
    assert_eq!(
        r.status, 400,
        "the deployment's maximum (the max_ndigits variable) applies"
    );
    assert!(r.error().contains("100000"), "{}", r.error());
}

#[test]
fn pi_http_details() {
    let (_dir, host) = fixture();
    let r = host.get("/api/v0/pi?ndigits=10");
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let etag = r.header("etag").expect("an ETag").to_string();
    let again = host.request(
        "GET",
        "/api/v0/pi?ndigits=10",
        &[("if-none-match", &etag)],
        None,
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let head = host.request("HEAD", "/api/v0/pi?ndigits=10", &[], None);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let post = host.request("POST", "/api/v0/pi", &[], Some(b""));
    assert_eq!(post.status, 405);
    assert!(post.header("allow").unwrap().contains("GET"));
    for q in [
        "ndigits=",
        "ndigits=%207",
        "ndigits=5&ndigits=6",
        "ndigits=5&x=1",
        "ndigits=-3",
    ] {
        let r = host.get(&format!("/api/v0/pi?{q}"));
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
    }
}

#[test]
fn answers_carry_their_length() {
    // A function has its whole answer in hand when it replies, so the answer goes out with a
    // Content-Length, not chunked: HTTP/1.0 clients and caches rely on it, and a chunked answer
    // is over only when the guest closes its body stream.
    let (_dir, host) = fixture();
    let iris = "sl=5.1&sw=3.5&pl=1.4&pw=0.3";
    for path in [
        "/api/v0/pi?ndigits=100".to_string(),
        "/api/v1/pi?ndigits=5".to_string(),
        "/api/v0/pi?ndigits=x".to_string(),
        format!("/api/v01/classify?{iris}"),
        "/api/v01/classify?sl=5.1".to_string(),
    ] {
        let r = host.get(&path);
        let length = r.body.len().to_string();
        assert_eq!(r.header("content-length"), Some(length.as_str()), "{path}");
        assert_eq!(r.header("transfer-encoding"), None, "{path}");
    }
}

fn classify(host: &Host, q: &str) -> e2e::Reply {
    host.get(&format!("/api/v01/classify?{q}"))
}

#[test]
fn iris_examples_batch_of_all_rows_and_bad_input() {
    let (_dir, host) = fixture();
    for (q, species) in [
        ("sl=5.1&sw=3.5&pl=1.4&pw=0.3", "Iris setosa"),
        ("sl=6.4&sw=3.2&pl=4.5&pw=1.5", "Iris versicolor"),
        ("sl=7.7&sw=3.0&pl=6.1&pw=2.3", "Iris virginica"),
    ] {
        let r = classify(&host, q);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.text()
                .starts_with(&format!("{{\"species\":\"{species}\"")),
            "{}",
            r.text()
        );
        assert_eq!(r.json()["model"], "iris-logreg@1");
    }

    // All 150 rows of the training data through the batch (KServe/TF Serving V1) protocol.
    let csv = std::fs::read_to_string(root().join("functions/iris/data/iris.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 150);
    let instances: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!(r[..4]
                .iter()
                .map(|v| v.parse::<f64>().unwrap())
                .collect::<Vec<_>>())
        })
        .collect();
    let body = serde_json::json!({ "instances": instances }).to_string();
    let r = host.request(
        "POST",
        "/api/v01/classify",
        &[("content-type", "application/json")],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let preds = r.json()["predictions"].as_array().unwrap().clone();
    assert_eq!(preds.len(), 150);
    let correct = preds
        .iter()
        .zip(&rows)
        .filter(|(p, row)| p["species"] == row[4])
        .count();
    assert!(correct as f64 / 150.0 >= 0.95, "accuracy {correct}/150");

    let mixed = r#"{"instances":[[5.1,3.5,1.4,0.2],{"sl":6.7,"sw":3.0,"pl":5.2,"pw":2.3}]}"#;
    let r = host.request(
        "POST",
        "/api/v01/classify",
        &[("content-type", "application/json")],
        Some(mixed.as_bytes()),
    );
    assert_eq!(r.json()["predictions"][0]["species"], "Iris setosa");
    assert_eq!(r.json()["predictions"][1]["species"], "Iris virginica");

    for (q, field) in [
        ("sw=3.5&pl=1.4&pw=0.3", "sl"),
        ("sl=5.1&sl=5.2&sw=3.5&pl=1.4&pw=0.3", "sl"),
        ("sl=5.1&sw=3.5&pl=1.4&pw=0.3&colour=blue", "colour"),
        ("sl=abc&sw=3.5&pl=1.4&pw=0.3", "sl"),
        ("sl=NaN&sw=3.5&pl=1.4&pw=0.3", "sl"),
        ("sl=inf&sw=3.5&pl=1.4&pw=0.3", "sl"),
        ("sl=0&sw=3.5&pl=1.4&pw=0.3", "sl"),
        ("sl=5.1&sw=3.5&pl=101&pw=0.3", "pl"),
    ] {
        let r = classify(&host, q);
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.error().contains(field), "{q}: {}", r.error());
    }
    let post = |ct: &str, body: &str| {
        host.request(
            "POST",
            "/api/v01/classify",
            &[("content-type", ct)],
            Some(body.as_bytes()),
        )
    };
    assert_eq!(post("application/json", "{not json").status, 400);
    assert_eq!(
        post("application/json", r#"{"instances":[[1,2,3]]}"#).status,
        400
    );
    assert_eq!(
        post("text/plain", r#"{"instances":[[5.1,3.5,1.4,0.2]]}"#).status,
        415
    );
    let too_many = format!(
        "{{\"instances\":[{}]}}",
        vec!["[5.1,3.5,1.4,0.2]"; 10_001].join(",")
    );
    let r = post("application/json", &too_many);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(r.error().contains("10000"), "{}", r.error());
}

/// With the model file's times settled, a reused instance stats the file instead of reading it
/// (iris-core's `model_file`): a rewrite that keeps the size, and a replacement by another file
/// of the same size and modification time, must still change the next answer.
#[test]
fn iris_reused_instance_sees_same_size_replacements_of_a_settled_model_file() {
    let (dir, host) = fixture();
    let path = dir.join("models/iris/model.json");
    let v1 = std::fs::read_to_string(&path).unwrap();
    let same_size = |name: &str| {
        let text = v1.replacen("\"iris-logreg\"", &format!("\"{name}\""), 1);
        assert_eq!((text.len(), text != v1), (v1.len(), true));
        text
    };
    let other = dir.write("models/other.json", same_size("iris-logreq"));
    let settle = || std::thread::sleep(fn_file_stamp::TIMESTAMP_SLACK + Duration::from_millis(500));
    let classify = || host.get("/api/v01-reused/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.3");
    let model = || classify().json()["model"].as_str().unwrap().to_owned();

    settle();
    for _ in 0..3 {
        assert_eq!(model(), "iris-logreg@1");
    }
    // In place, as many bytes (a new modification time, the same file).
    std::fs::write(&path, same_size("iris-logreh")).unwrap();
    assert_eq!(
        model(),
        "iris-logreh@1",
        "the next request sees the rewrite"
    );

    settle();
    for _ in 0..3 {
        assert_eq!(model(), "iris-logreh@1");
    }
    // Replaced by another file with the same size and modification time (as `tar x` or
    // `cp -p` can leave one), moved over it: only the file's identity differs.
    let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(&other)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    std::fs::rename(&other, &path).unwrap();
    assert_eq!(
        model(),
        "iris-logreq@1",
        "the next request sees the replacement"
    );
}

/// A model mounted the way a Kubernetes ConfigMap mounts its files (`model.json` a symlink
/// through `..data` into a timestamped directory, updated by swapping `..data`): the reused
/// instance stats what the link points to, so a settled file swapped for one of the same size
/// and modification time changes the next answer.
#[test]
fn iris_reused_instance_follows_a_configmap_style_symlinked_model() {
    let (dir, host) = fixture();
    let v1 = std::fs::read_to_string(dir.join("models/iris/model.json")).unwrap();
    let v1b = v1.replacen("\"iris-logreg\"", "\"iris-logreh\"", 1);
    assert_eq!(v1b.len(), v1.len());
    std::fs::remove_file(dir.join("models/iris/model.json")).unwrap();
    let a = dir.write("models/iris/..2026_12_01_a/model.json", &v1);
    let b = dir.write("models/iris/..2026_12_01_b/model.json", &v1b);
    let modified = std::fs::metadata(&a).unwrap().modified().unwrap();
    let b_file = std::fs::File::options().write(true).open(&b).unwrap();
    b_file.set_modified(modified).unwrap();
    drop(b_file);
    let link = |target: &str, name: &str| {
        std::os::unix::fs::symlink(target, dir.join("models/iris").join(name)).unwrap()
    };
    link("..2026_12_01_a", "..data");
    link("..data/model.json", "model.json");
    let model = || {
        let r = host.get("/api/v01-reused/classify?sl=5.1&sw=3.5&pl=1.4&pw=0.3");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["model"].as_str().unwrap().to_owned()
    };

    std::thread::sleep(fn_file_stamp::TIMESTAMP_SLACK + Duration::from_millis(500));
    for _ in 0..3 {
        assert_eq!(model(), "iris-logreg@1");
    }
    // The kubelet's update: a new `..data` link moved over the old one.
    link("..2026_12_01_b", "..data_tmp");
    std::fs::rename(
        dir.join("models/iris/..data_tmp"),
        dir.join("models/iris/..data"),
    )
    .unwrap();
    assert_eq!(model(), "iris-logreh@1", "the next request sees the swap");
}

#[test]
fn iris_model_file_replaced_on_disk_answers_next_and_missing_model_is_503() {
    let (dir, host) = fixture();
    // A fresh instance per request, and reused instances (which keep the model they parsed
    // until the file's bytes change).
    for route in ["/api/v01/classify", "/api/v01-reused/classify"] {
        let classify = |q: &str| host.get(&format!("{route}?{q}"));
        let q = "sl=5.1&sw=3.5&pl=1.4&pw=0.3";
        dir.copy_in(
            &root().join("models/iris/v1/model.json"),
            "models/iris/model.json",
        );
        for _ in 0..3 {
            assert_eq!(classify(q).json()["model"], "iris-logreg@1", "{route}");
        }
        dir.copy_in(
            &root().join("models/iris/v2/model.json"),
            "models/iris/model.json",
        );
        let r = classify(q);
        assert_eq!(
            r.json()["model"],
            "iris-knn@2",
            "{route}: the next request uses the new model"
        );
        assert_eq!(r.json()["species"], "Iris setosa");

        std::fs::write(dir.join("models/iris/model.json"), "{ corrupt").unwrap();
        let r = classify(q);
        assert_eq!(r.status, 503, "{route}: {}", r.text());
        assert!(r.error().to_lowercase().contains("model"), "{}", r.error());
        std::fs::remove_file(dir.join("models/iris/model.json")).unwrap();
        assert_eq!(classify(q).status, 503, "{route}");
        assert_eq!(
            host.get("/api/v0/pi?ndigits=5").status,
            200,
            "other routes keep serving"
        );
        dir.copy_in(
            &root().join("models/iris/v1/model.json"),
            "models/iris/model.json",
        );
        assert!(
            wait_until(Duration::from_secs(5), || classify(q).status == 200),
            "{route}"
        );
        assert_eq!(classify(q).json()["model"], "iris-logreg@1", "{route}");
    }
}

/// How many of wasm's wide-arithmetic instructions (64×64→128-bit multiplies, 128-bit adds and
/// subtracts) the core modules of the component in `file` hold.
fn wide_arithmetic_instructions(file: &Path) -> usize {
    use wasmparser::{Operator, Parser, Payload, WasmFeatures};
    let bytes = std::fs::read(file).unwrap();
    let mut parser = Parser::new(0);
    parser.set_features(WasmFeatures::all());
    let mut count = 0;
    for payload in parser.parse_all(&bytes) {
        let Payload::CodeSectionEntry(body) = payload.unwrap() else {
            continue;
        };
        let mut ops = body.get_operators_reader().unwrap();
        while !ops.eof() {
            if matches!(
                ops.read().unwrap(),
                Operator::I64MulWideU
                    | Operator::I64MulWideS
                    | Operator::I64Add128
                    | Operator::I64Sub128
            ) {
                count += 1;
            }
        }
    }
    count
}

/// pi's speed at large sizes comes from `i64.mul_wide_u` (4–5× at 10^4 digits and more), and
/// pi's answers are checked against reference digits. In any other component the instructions
/// are a hazard: the LLVM in rustc 1.95 miscompiles some of their uses (`3i64.checked_mul(4)`
/// came out `None`, llvm-project#199910), so `cargo xtask build` compiles only pi with them.
#[test]
fn only_pi_is_compiled_with_wide_arithmetic() {
    for pi in ["pi_chudnovsky", "pi_picrunch"] {
        assert!(
            wide_arithmetic_instructions(&wasm(pi)) > 0,
            "{pi}.wasm has no wide-arithmetic instruction: pi's limb products are slow again"
        );
    }
    for other in ["iris", "onnx_model", "test_faults", "test_hello_p2"] {
        let n = wide_arithmetic_instructions(&wasm(other));
        assert_eq!(
            n, 0,
            "{other}.wasm holds {n} wide-arithmetic instructions: compiled with the feature \
             that rustc 1.95's LLVM can miscompile"
        );
    }
}
