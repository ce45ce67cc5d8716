//! The `/api/v01/classify` contract, exercised through `iris_core::respond`
//! with the committed model artifacts: one example per species, the whole data
//! set through the batch path, a table of every refused input, model failures,
//! and property tests that no input panics or yields anything but 2xx/4xx.

use iris_core::{load_model, respond, Model, ModelError, Reply, MAX_BATCH, MAX_BODY_BYTES};
use proptest::prelude::*;
use serde_json::{json, Value};

const V1: &[u8] = include_bytes!("../../../../models/iris/v1/model.json");
const V2: &[u8] = include_bytes!("../../../../models/iris/v2/model.json");
const IRIS_CSV: &str = include_str!("../../data/iris.csv");

fn v1() -> Model {
    load_model(V1).expect("committed v1 loads")
}

fn v2() -> Model {
    load_model(V2).expect("committed v2 loads")
}

fn get(model: &Model, query: &str) -> Reply {
    respond("GET", Some(query), None, b"", Ok(model))
}

fn post(model: &Model, body: &[u8]) -> Reply {
    respond("POST", None, Some("application/json"), body, Ok(model))
}

fn json_body(reply: &Reply) -> Value {
    assert_eq!(reply.header("content-type"), Some("application/json"));
    serde_json::from_slice(&reply.body).expect("reply body is JSON")
}

fn error_of(reply: &Reply) -> String {
    let v = json_body(reply);
    assert_eq!(v.as_object().unwrap().len(), 1, "only `error`: {v}");
    v["error"].as_str().expect("error is a string").to_string()
}

/// Rows of iris.csv: measurements and species name.
fn iris_rows() -> Vec<([f64; 4], String)> {
    IRIS_CSV
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let x = [0, 1, 2, 3].map(|j| f[j].parse::<f64>().unwrap());
            (x, f[4].to_string())
        })
        .collect()
}

#[test]
fn one_example_per_species() {
    let cases = [
        ("sl=5.1&sw=3.5&pl=1.4&pw=0.3", "Iris setosa"),
        ("sl=6.4&sw=3.2&pl=4.5&pw=1.5", "Iris versicolor"),
        ("sl=6.3&sw=3.3&pl=6.0&pw=2.5", "Iris virginica"),
    ];
    for model in [v1(), v2()] {
        for (query, species) in cases {
            let reply = get(&model, query);
            assert_eq!(reply.status, 200, "{query}");
            let v = json_body(&reply);
            assert_eq!(v["species"], species, "{} {query}", model.id());
            assert_eq!(v["model"], model.id());
            let probs = v["probabilities"].as_object().unwrap();
            assert_eq!(probs.len(), 3);
            let sum: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
            assert!((sum - 1.0).abs() < 1e-9);
            let best = probs
                .iter()
                .max_by(|a, b| a.1.as_f64().unwrap().total_cmp(&b.1.as_f64().unwrap()))
                .unwrap();
            assert_eq!(best.0, species);
        }
    }
}

#[test]
fn single_reply_has_species_first_then_probabilities_then_model() {
    let reply = get(&v1(), "sl=5.1&sw=3.5&pl=1.4&pw=0.3");
    let text = String::from_utf8(reply.body).unwrap();
    assert!(
        text.starts_with(r#"{"species":"Iris setosa","probabilities":{"Iris setosa":"#),
        "{text}"
    );
    assert!(text.ends_with(r#""model":"iris-logreg@1"}"#), "{text}");
    let v2 = get(&v2(), "sl=5.1&sw=3.5&pl=1.4&pw=0.3");
    assert_eq!(
        String::from_utf8(v2.body).unwrap(),
        r#"{"species":"Iris setosa","probabilities":{"Iris setosa":1.0,"Iris versicolor":0.0,"Iris virginica":0.0},"model":"iris-knn@2"}"#
    );
}

#[test]
fn query_decoding_is_form_urlencoded_and_order_free() {
    let m = v1();
    let plain = json_body(&get(&m, "sl=5.1&sw=3.5&pl=1.4&pw=0.3"));
    for q in [
        "pw=0.3&pl=1.4&sw=3.5&sl=5.1",
        "s%6C=5%2E1&sw=3.5&pl=1.4&pw=0.3",
        "sl=5.1&&sw=3.5&pl=1.4&pw=0.3&",
        "sl=5.10&sw=3.5e0&pl=+1.4&pw=.3",
    ] {
        let reply = get(&m, q);
        if q.contains('+') {
            // `+` decodes to a space: " 1.4" is not a number.
            assert_eq!(reply.status, 400, "{q}");
            assert!(error_of(&reply).contains("`pl`"));
        } else {
            assert_eq!(reply.status, 200, "{q}");
            assert_eq!(json_body(&reply), plain, "{q}");
        }
    }
}

#[test]
fn all_150_rows_through_the_batch_path() {
    let rows = iris_rows();
    assert_eq!(rows.len(), 150);
    // Alternate the two instance shapes.
    let instances: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, (x, _))| {
            if i % 2 == 0 {
                json!(x)
            } else {
                json!({"pw": x[3], "sl": x[0], "pl": x[2], "sw": x[1]})
            }
        })
        .collect();
    let body = serde_json::to_vec(&json!({ "instances": instances })).unwrap();
    for model in [v1(), v2()] {
        let reply = post(&model, &body);
        assert_eq!(reply.status, 200);
        let v = json_body(&reply);
        assert_eq!(v["model"], model.id());
        let predictions = v["predictions"].as_array().unwrap();
        assert_eq!(predictions.len(), 150);
        let mut right = 0;
        for (i, (p, (x, species))) in predictions.iter().zip(&rows).enumerate() {
            assert!(p.get("model").is_none());
            // Same answer as the single-instance path, in order.
            assert_eq!(p["species"], model.predict_species(x), "row {i}");
            right += usize::from(p["species"] == species.as_str());
        }
        let accuracy = right as f64 / 150.0;
        assert!(accuracy >= 0.95, "{}: accuracy {accuracy}", model.id());
    }
}

#[test]
fn batch_reply_shape() {
    let reply = post(
        &v1(),
        br#"{"instances":[[5.1,3.5,1.4,0.2],{"sl":6.7,"sw":3.0,"pl":5.2,"pw":2.3}]}"#,
    );
    assert_eq!(reply.status, 200);
    let text = String::from_utf8(reply.body).unwrap();
    assert!(
        text.starts_with(r#"{"predictions":[{"species":"Iris setosa","probabilities":{"#),
        "{text}"
    );
    assert!(
        text.contains(r#"},{"species":"Iris virginica","probabilities":{"#),
        "{text}"
    );
    assert!(text.ends_with(r#"}}],"model":"iris-logreg@1"}"#), "{text}");
}

#[test]
fn content_type_parameters_and_case_are_accepted() {
    let m = v1();
    let body = br#"{"instances":[[5.1,3.5,1.4,0.2]]}"#;
    for ct in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        " application/json ;x=y",
    ] {
        let reply = respond("POST", None, Some(ct), body, Ok(&m));
        assert_eq!(reply.status, 200, "{ct}");
    }
}

#[test]
fn refused_get_queries() {
    let m = v1();
    // (query, words the error must contain)
    let cases: &[(&str, &[&str])] = &[
        ("", &["missing", "`sl`"]),
        ("sl=5.1&sw=3.5&pl=1.4", &["missing", "`pw`"]),
        ("sw=3.5&pl=1.4&pw=0.2", &["missing", "`sl`"]),
        (
            "sl=5.1&sl=5.2&sw=3.5&pl=1.4&pw=0.2",
            &["`sl`", "more than once"],
        ),
        (
            "sl=5.1&sw=3.5&pl=1.4&pw=0.2&pw=0.2",
            &["`pw`", "more than once"],
        ),
        (
            "sl=5.1&sw=3.5&pl=1.4&pw=0.2&x=1",
            &["unknown parameter", "`x`"],
        ),
        (
            "SL=5.1&sw=3.5&pl=1.4&pw=0.2",
            &["unknown parameter", "`SL`"],
        ),
        ("sepal_length=5.1", &["unknown parameter", "`sepal_length`"]),
        ("sl=abc&sw=3.5&pl=1.4&pw=0.2", &["`sl`", "number", "`abc`"]),
        ("sl=5,1&sw=3.5&pl=1.4&pw=0.2", &["`sl`", "number"]),
        ("sl=5.1&sw=3.5&pl=1.4&pw=", &["`pw`", "empty"]),
        ("sl&sw=3.5&pl=1.4&pw=0.2", &["`sl`", "empty"]),
        ("sl=NaN&sw=3.5&pl=1.4&pw=0.2", &["`sl`", "NaN"]),
        ("sl=5.1&sw=nan&pl=1.4&pw=0.2", &["`sw`", "NaN"]),
        ("sl=5.1&sw=3.5&pl=inf&pw=0.2", &["`pl`", "finite"]),
        ("sl=5.1&sw=3.5&pl=1.4&pw=-inf", &["`pw`", "finite"]),
        ("sl=infinity&sw=3.5&pl=1.4&pw=0.2", &["`sl`", "finite"]),
        ("sl=1e999&sw=3.5&pl=1.4&pw=0.2", &["`sl`", "finite"]),
        ("sl=0&sw=3.5&pl=1.4&pw=0.2", &["`sl`", "greater than 0"]),
        ("sl=-0&sw=3.5&pl=1.4&pw=0.2", &["`sl`", "greater than 0"]),
        ("sl=5.1&sw=-3.5&pl=1.4&pw=0.2", &["`sw`", "greater than 0"]),
        ("sl=5.1&sw=3.5&pl=100.0001&pw=0.2", &["`pl`", "at most 100"]),
        ("sl=5.1&sw=3.5&pl=1.4&pw=1e3", &["`pw`", "at most 100"]),
    ];
    for (query, words) in cases {
        let reply = get(&m, query);
        assert_eq!(reply.status, 400, "{query}");
        let err = error_of(&reply);
        for w in *words {
            assert!(err.contains(w), "{query}: {err:?} lacks {w:?}");
        }
    }
    // Boundaries that pass.
    for q in [
        "sl=100&sw=3.5&pl=1.4&pw=0.2",
        "sl=5.1&sw=3.5&pl=1.4&pw=1e-9",
    ] {
        assert_eq!(get(&m, q).status, 200, "{q}");
    }
    // No query at all.
    let reply = respond("GET", None, None, b"", Ok(&m));
    assert_eq!(reply.status, 400);
    assert!(error_of(&reply).contains("missing parameter `sl`"));
}

#[test]
fn refused_post_bodies() {
    let m = v1();
    let cases: &[(&str, &[&str])] = &[
        ("", &["not valid JSON"]),
        ("{", &["not valid JSON"]),
        ("{\"instances\":[[5.1,3.5,1.4,0.2]]", &["not valid JSON"]),
        ("{\"instances\":[[NaN,3.5,1.4,0.2]]}", &["not valid JSON"]),
        ("{\"instances\":[[1e999,3.5,1.4,0.2]]}", &["not valid JSON"]),
        ("[[5.1,3.5,1.4,0.2]]", &["JSON object", "`instances`"]),
        ("null", &["JSON object"]),
        ("{}", &["missing `instances`"]),
        (
            "{\"inputs\":[[5.1,3.5,1.4,0.2]]}",
            &["unknown key", "`inputs`"],
        ),
        (
            "{\"instances\":[[5.1,3.5,1.4,0.2]],\"x\":1}",
            &["unknown key", "`x`"],
        ),
        ("{\"instances\":{}}", &["`instances`", "array"]),
        ("{\"instances\":[]}", &["`instances`", "empty"]),
        ("{\"instances\":[5.1]}", &["`instances[0]`", "array of 4"]),
        (
            "{\"instances\":[[5.1,3.5,1.4]]}",
            &["`instances[0]`", "3 values", "exactly 4"],
        ),
        (
            "{\"instances\":[[5.1,3.5,1.4,0.2],[5.1,3.5,1.4,0.2,9]]}",
            &["`instances[1]`", "5 values"],
        ),
        ("{\"instances\":[[]]}", &["`instances[0]`", "0 values"]),
        (
            "{\"instances\":[{\"sl\":5.1,\"sw\":3.5,\"pl\":1.4}]}",
            &["`instances[0]`", "missing key `pw`"],
        ),
        (
            "{\"instances\":[{\"sl\":5.1,\"sw\":3.5,\"pl\":1.4,\"pw\":0.2,\"x\":1}]}",
            &["`instances[0]`", "unknown key `x`"],
        ),
        (
            "{\"instances\":[[\"5.1\",3.5,1.4,0.2]]}",
            &["`instances[0][0]`", "number", "string"],
        ),
        (
            "{\"instances\":[{\"sl\":5.1,\"sw\":null,\"pl\":1.4,\"pw\":0.2}]}",
            &["`instances[0].sw`", "null"],
        ),
        (
            "{\"instances\":[[0,3.5,1.4,0.2]]}",
            &["`instances[0][0]`", "greater than 0"],
        ),
        (
            "{\"instances\":[[5.1,3.5,1.4,-0.2]]}",
            &["`instances[0][3]`", "greater than 0"],
        ),
        (
            "{\"instances\":[{\"sl\":5.1,\"sw\":3.5,\"pl\":101,\"pw\":0.2}]}",
            &["`instances[0].pl`", "at most 100"],
        ),
    ];
    for (body, words) in cases {
        let reply = post(&m, body.as_bytes());
        assert_eq!(reply.status, 400, "{body}");
        let err = error_of(&reply);
        for w in *words {
            assert!(err.contains(w), "{body}: {err:?} lacks {w:?}");
        }
    }
}

#[test]
fn wrong_content_type_is_415() {
    let m = v1();
    let body = br#"{"instances":[[5.1,3.5,1.4,0.2]]}"#;
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        Some(""),
    ] {
        let reply = respond("POST", None, ct, body, Ok(&m));
        assert_eq!(reply.status, 415, "{ct:?}");
        assert!(error_of(&reply).contains("application/json"));
    }
}

#[test]
fn batch_limit_is_413_naming_the_limit() {
    let m = v1();
    let instance = "[5.1,3.5,1.4,0.2]";
    let batch = |n: usize| format!("{{\"instances\":[{}]}}", vec![instance; n].join(","));
    let ok = post(&m, batch(MAX_BATCH).as_bytes());
    assert_eq!(ok.status, 200);
    assert_eq!(
        json_body(&ok)["predictions"].as_array().unwrap().len(),
        MAX_BATCH
    );
    let over = post(&m, batch(MAX_BATCH + 1).as_bytes());
    assert_eq!(over.status, 413);
    let err = error_of(&over);
    assert!(err.contains("10000") && err.contains("10001"), "{err}");

    let mut huge = b"{\"instances\":[".to_vec();
    huge.resize(MAX_BODY_BYTES + 1, b' ');
    let reply = post(&m, &huge);
    assert_eq!(reply.status, 413);
    assert!(error_of(&reply).contains(&MAX_BODY_BYTES.to_string()));
}

#[test]
fn other_methods_are_405_with_allow() {
    let m = v1();
    for method in [
        "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE", "get", "post", "",
    ] {
        let reply = respond(
            method,
            Some("sl=5.1&sw=3.5&pl=1.4&pw=0.3"),
            None,
            b"",
            Ok(&m),
        );
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, POST"));
        error_of(&reply);
    }
}

#[test]
fn missing_or_bad_model_is_503_naming_the_problem() {
    let cases = [
        (
            ModelError::Missing("/model/model.json: No such file or directory".into()),
            "missing",
        ),
        (load_model(b"{not json").unwrap_err(), "corrupt"),
        (load_model(b"").unwrap_err(), "corrupt"),
        (
            load_model(br#"{"format":"fnhost-iris-model/2"}"#).unwrap_err(),
            "unsupported",
        ),
    ];
    for (err, word) in cases {
        for method in ["GET", "POST"] {
            let reply = respond(
                method,
                Some("sl=5.1&sw=3.5&pl=1.4&pw=0.3"),
                Some("application/json"),
                b"{}",
                Err(err.clone()),
            );
            assert_eq!(reply.status, 503);
            let msg = error_of(&reply);
            assert!(msg.contains(word), "{msg}");
        }
    }
    // The method check comes first.
    let reply = respond(
        "PUT",
        None,
        None,
        b"",
        Err(ModelError::Missing("gone".into())),
    );
    assert_eq!(reply.status, 405);
}

fn v1_json() -> Value {
    serde_json::from_slice(V1).unwrap()
}

fn v2_json() -> Value {
    serde_json::from_slice(V2).unwrap()
}

#[test]
fn load_model_classifies_bad_artifacts() {
    fn load(v: &Value) -> Result<Model, ModelError> {
        load_model(&serde_json::to_vec(v).unwrap())
    }
    let corrupt = |v: Value, why: &str| match load(&v) {
        Err(ModelError::Corrupt(_)) => {}
        other => panic!("{why}: expected Corrupt, got {other:?}"),
    };
    let unsupported = |v: Value, why: &str| match load(&v) {
        Err(ModelError::Unsupported(_)) => {}
        other => panic!("{why}: expected Unsupported, got {other:?}"),
    };
    assert!(load(&v1_json()).is_ok());
    assert!(load(&v2_json()).is_ok());
    assert!(matches!(
        load_model(b"\xff\xfe"),
        Err(ModelError::Corrupt(_))
    ));
    corrupt(json!([1, 2]), "not an object");
    corrupt(json!({"name": "x"}), "no format");

    let with = |base: Value, path: &[&str], value: Value| {
        let mut v = base;
        let mut slot = &mut v;
        for p in &path[..path.len() - 1] {
            slot = &mut slot[*p];
        }
        match value {
            Value::Null => {
                slot.as_object_mut().unwrap().remove(path[path.len() - 1]);
            }
            value => slot[path[path.len() - 1]] = value,
        }
        v
    };
    unsupported(
        with(v1_json(), &["format"], json!("fnhost-iris-model/9")),
        "format",
    );
    corrupt(with(v1_json(), &["format"], json!(1)), "format type");
    unsupported(with(v1_json(), &["kind"], json!("svm")), "kind");
    unsupported(
        with(v1_json(), &["features"], json!(["a", "b", "c", "d"])),
        "features",
    );
    corrupt(
        with(v1_json(), &["trained_on"], Value::Null),
        "missing field",
    );
    corrupt(with(v1_json(), &["extra"], json!(1)), "unknown field");
    corrupt(with(v1_json(), &["classes"], json!([])), "no classes");
    corrupt(
        with(v1_json(), &["classes"], json!(["a", "a", "b"])),
        "repeated class",
    );
    corrupt(with(v1_json(), &["name"], json!("")), "empty name");
    corrupt(
        with(v1_json(), &["parameters", "intercepts"], json!([1.0, 2.0])),
        "intercepts",
    );
    corrupt(
        with(v1_json(), &["parameters", "weights"], json!([[1, 2, 3]])),
        "weights rows",
    );
    corrupt(
        with(
            v1_json(),
            &["parameters", "weights"],
            json!([[1, 2], [1, 2], [1, 2], [1, 2]]),
        ),
        "weights cols",
    );
    corrupt(
        with(v1_json(), &["parameters", "weights"], Value::Null),
        "no weights",
    );
    corrupt(with(v2_json(), &["parameters", "k"], json!(0)), "k = 0");
    corrupt(with(v2_json(), &["parameters", "k"], json!(151)), "k > n");
    corrupt(
        with(v2_json(), &["parameters", "labels"], json!([0, 1])),
        "labels length",
    );
    corrupt(
        with(v2_json(), &["parameters", "points"], json!([[1, 2, 3]])),
        "point arity",
    );
    unsupported(
        with(v2_json(), &["parameters", "metric"], json!("manhattan")),
        "metric",
    );
    let mut bad_label = v2_json();
    bad_label["parameters"]["labels"][0] = json!(3);
    corrupt(bad_label, "label out of range");
}

#[test]
fn replacing_the_artifact_changes_the_answer() {
    // What the glue relies on: the reply depends only on the bytes it loaded.
    let q = "sl=6.0&sw=2.7&pl=5.1&pw=1.6";
    let a = json_body(&get(&v1(), q));
    let b = json_body(&get(&v2(), q));
    assert_eq!(a["model"], "iris-logreg@1");
    assert_eq!(b["model"], "iris-knn@2");
    let mut flipped = v1_json();
    flipped["classes"] = json!(["Iris virginica", "Iris versicolor", "Iris setosa"]);
    flipped["version"] = json!("1-flipped");
    let flipped = load_model(&serde_json::to_vec(&flipped).unwrap()).unwrap();
    let c = json_body(&get(&flipped, "sl=5.1&sw=3.5&pl=1.4&pw=0.3"));
    assert_eq!(c["species"], "Iris virginica");
    assert_eq!(c["model"], "iris-logreg@1-flipped");
}

fn query_piece() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("sl".to_string()),
        Just("sw".to_string()),
        Just("pl".to_string()),
        Just("pw".to_string()),
        "[a-zA-Z%0-9+]{0,4}",
    ];
    let value = prop_oneof![
        (0.0f64..120.0).prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        "[-+.eE0-9%a-z]{0,8}",
    ];
    (key, prop::option::of(value)).prop_map(|(k, v)| match v {
        Some(v) => format!("{k}={v}"),
        None => k,
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-200.0f64..200.0).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z]{0,3}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("sl".to_string()),
                    Just("sw".to_string()),
                    Just("pl".to_string()),
                    Just("pw".to_string()),
                    Just("instances".to_string()),
                    "[a-z]{1,3}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_query_strings_never_panic(q in ".{0,64}", pieces in prop::collection::vec(query_piece(), 0..7)) {
        let m = v1();
        for query in [q.clone(), pieces.join("&")] {
            let reply = get(&m, &query);
            prop_assert!(reply.status == 200 || reply.status == 400, "{} for {:?}", reply.status, query);
            json_body(&reply);
        }
    }

    #[test]
    fn valid_measurements_always_classify(x in prop::array::uniform4(1e-6f64..=100.0)) {
        for m in [v1(), v2()] {
            let q = format!("sl={}&sw={}&pl={}&pw={}", x[0], x[1], x[2], x[3]);
            let reply = get(&m, &q);
            prop_assert_eq!(reply.status, 200);
            let v = json_body(&reply);
            prop_assert!(m.classes().iter().any(|c| v["species"] == c.as_str()));
        }
    }

    #[test]
    fn arbitrary_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), value in json_value(), instances in prop::collection::vec(json_value(), 0..5)) {
        let m = v2();
        let wrapped = serde_json::to_vec(&json!({ "instances": instances })).unwrap();
        for body in [bytes.clone(), serde_json::to_vec(&value).unwrap(), wrapped] {
            let reply = post(&m, &body);
            prop_assert!(matches!(reply.status, 200 | 400 | 413), "{} for {:?}", reply.status, String::from_utf8_lossy(&body));
            json_body(&reply);
        }
    }

    #[test]
    fn arbitrary_requests_are_2xx_or_4xx(method in "[A-Za-z]{0,7}", q in prop::option::of(".{0,32}"), ct in prop::option::of(".{0,24}"), body in prop::collection::vec(any::<u8>(), 0..64)) {
        let reply = respond(&method, q.as_deref(), ct.as_deref(), &body, Ok(&v1()));
        prop_assert!((200..300).contains(&reply.status) || (400..500).contains(&reply.status), "{}", reply.status);
    }
}
