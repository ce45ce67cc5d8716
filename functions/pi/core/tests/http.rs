//! The `/api/v0/pi` contract of `pi_core::http::respond`: statuses, headers,
//! bodies and error messages.

use pi_core::http::{max_ndigits_setting, respond, Reply, CACHE_IMMUTABLE};
use pi_core::{pi_string, Algorithm, DEFAULT_MAX_NDIGITS};
use proptest::prelude::*;
use serde_json::Value;

const V2: Algorithm = Algorithm::Chudnovsky;

fn get(query: Option<&str>) -> Reply {
    respond(V2, "GET", query, None, DEFAULT_MAX_NDIGITS)
}

fn json(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).expect("body is JSON")
}

fn error_text(reply: &Reply) -> String {
    json(reply)["error"]
        .as_str()
        .expect("an error string")
        .to_owned()
}

#[test]
fn get_returns_compact_json_with_keys_in_order() {
    for algo in [Algorithm::Machin, Algorithm::Chudnovsky] {
        let reply = respond(algo, "GET", Some("ndigits=5"), None, DEFAULT_MAX_NDIGITS);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, br#"{"ndigits":5,"pi":"3.14159"}"#);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some(CACHE_IMMUTABLE));
        assert_eq!(reply.header("etag"), Some("\"pi-5\""));
    }
}

#[test]
fn defaults_and_edge_values() {
    let expected_default = format!(r#"{{"ndigits":22,"pi":"{}"}}"#, pi_string(V2, 22));
    for query in [None, Some(""), Some("&")] {
        let reply = get(query);
        assert_eq!(reply.status, 200, "{query:?}");
        assert_eq!(String::from_utf8(reply.body).unwrap(), expected_default);
    }
    assert_eq!(get(Some("ndigits=0")).body, br#"{"ndigits":0,"pi":"3"}"#);
    let r99 = json(&get(Some("ndigits=99")));
    assert!(r99["pi"].as_str().unwrap().ends_with("342117067"));
    // Leading zeros and percent-encoded digits are plain decimal integers.
    assert_eq!(json(&get(Some("ndigits=007")))["ndigits"], 7);
    assert_eq!(json(&get(Some("ndigits=%31%30")))["ndigits"], 10);
    assert_eq!(json(&get(Some("nd%69gits=3")))["ndigits"], 3);
    // The maximum itself is allowed.
    assert_eq!(respond(V2, "GET", Some("ndigits=50"), None, 50).status, 200);
}

#[test]
fn bad_queries_are_400_naming_parameter_and_rule() {
    let max = 1000;
    // (query, what the message must contain)
    let cases: &[(&str, &[&str])] = &[
        ("ndigits=", &["ndigits", "non-negative integer", "empty"]),
        ("ndigits", &["ndigits", "non-negative integer", "empty"]),
        (
            "ndigits=abc",
            &["ndigits", "non-negative integer", "\"abc\""],
        ),
        (
            "ndigits=5.5",
            &["ndigits", "non-negative integer", "\"5.5\""],
        ),
        (
            "ndigits=1e6",
            &["ndigits", "non-negative integer", "\"1e6\""],
        ),
        (
            "ndigits=%207",
            &["ndigits", "non-negative integer", "\" 7\""],
        ),
        (
            "ndigits=7%20",
            &["ndigits", "non-negative integer", "\"7 \""],
        ),
        ("ndigits=+5", &["ndigits", "non-negative integer", "\" 5\""]),
        (
            "ndigits=%2B5",
            &["ndigits", "non-negative integer", "\"+5\""],
        ),
        ("ndigits=-5", &["ndigits", "non-negative integer", "\"-5\""]),
        ("ndigits=-0", &["ndigits", "non-negative integer", "\"-0\""]),
        (
            "ndigits=0x10",
            &["ndigits", "non-negative integer", "\"0x10\""],
        ),
        ("ndigits=%EF%BC%95", &["ndigits", "non-negative integer"]), // fullwidth 5
        ("ndigits=1001", &["ndigits", "at most 1000", "\"1001\""]),
        (
            "ndigits=99999999999999999999999",
            &["ndigits", "at most 1000"],
        ),
        ("ndigits=5&ndigits=5", &["ndigits", "at most once"]),
        ("ndigits=5&ndigits=6", &["ndigits", "at most once"]),
        (
            "NDIGITS=5",
            &[
                "unknown query parameter",
                "\"NDIGITS\"",
                "only parameter is ndigits",
            ],
        ),
        ("digits=5", &["unknown query parameter", "\"digits\""]),
        ("ndigits=5&x=1", &["unknown query parameter", "\"x\""]),
        ("=5", &["unknown query parameter", "\"\""]),
    ];
    for &(query, needles) in cases {
        for algo in [Algorithm::Machin, Algorithm::Chudnovsky] {
            let reply = respond(algo, "GET", Some(query), None, max);
            assert_eq!(reply.status, 400, "{query}");
            assert_eq!(
                reply.header("content-type"),
                Some("application/json"),
                "{query}"
            );
            assert_eq!(reply.header("etag"), None, "{query}");
            let text = error_text(&reply);
            for needle in needles {
                assert!(text.contains(needle), "{query}: {text:?} lacks {needle:?}");
            }
        }
    }
}

#[test]
fn long_bad_values_are_not_echoed_whole() {
    let query = format!("ndigits={}", "x".repeat(10_000));
    let text = error_text(&get(Some(&query)));
    assert!(text.len() < 200, "{text}");
}

#[test]
fn head_has_get_headers_and_no_body() {
    let get_reply = get(Some("ndigits=100"));
    let head = respond(V2, "HEAD", Some("ndigits=100"), None, DEFAULT_MAX_NDIGITS);
    assert_eq!(head.status, 200);
    assert_eq!(head.headers, get_reply.headers);
    assert!(head.body.is_empty());
    let bad = respond(V2, "HEAD", Some("ndigits=x"), None, DEFAULT_MAX_NDIGITS);
    assert_eq!(bad.status, 400);
    assert!(bad.body.is_empty());
}

#[test]
fn other_methods_are_405_with_allow() {
    for method in [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "get", "TRACE", "",
    ] {
        let reply = respond(V2, method, Some("ndigits=5"), None, DEFAULT_MAX_NDIGITS);
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        let text = error_text(&reply);
        assert!(text.contains("GET or HEAD"), "{text}");
    }
}

#[test]
fn if_none_match_gives_304() {
    for header in ["\"pi-5\"", "W/\"pi-5\"", "\"other\", \"pi-5\"", "*"] {
        let reply = respond(
            V2,
            "GET",
            Some("ndigits=5"),
            Some(header),
            DEFAULT_MAX_NDIGITS,
        );
        assert_eq!(reply.status, 304, "{header}");
        assert!(reply.body.is_empty());
        assert_eq!(reply.header("etag"), Some("\"pi-5\""));
        assert_eq!(reply.header("cache-control"), Some(CACHE_IMMUTABLE));
    }
    let miss = respond(
        V2,
        "GET",
        Some("ndigits=5"),
        Some("\"pi-6\""),
        DEFAULT_MAX_NDIGITS,
    );
    assert_eq!(miss.status, 200);
    // The default is 22 digits, so its tag is the one for 22.
    assert_eq!(
        respond(V2, "GET", None, Some("\"pi-22\""), DEFAULT_MAX_NDIGITS).status,
        304
    );
    // Validation comes first.
    let bad = respond(V2, "GET", Some("ndigits=x"), Some("*"), DEFAULT_MAX_NDIGITS);
    assert_eq!(bad.status, 400);
}

#[test]
fn max_ndigits_setting_parsing() {
    assert_eq!(max_ndigits_setting(None), Ok(DEFAULT_MAX_NDIGITS));
    assert_eq!(max_ndigits_setting(Some("5000")), Ok(5000));
    for bad in ["", "abc", "-1", "1e6", " 5"] {
        let reply = max_ndigits_setting(Some(bad)).unwrap_err();
        assert_eq!(reply.status, 500);
        let text = error_text(&reply);
        assert!(
            text.contains("the max_ndigits variable") && text.contains("deployment setting"),
            "{text}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// No method, query or If-None-Match makes `respond` panic; it answers
    /// 200, 304, 400 or 405, with a JSON body unless it is HEAD or 304.
    #[test]
    fn respond_never_panics(
        method in prop_oneof![
            Just("GET".to_owned()), Just("HEAD".to_owned()), Just("POST".to_owned()), ".{0,8}"
        ],
        query in proptest::option::of(prop_oneof![
            ".{0,40}",
            "(ndigits|NDIGITS|x|%6E)(=[-+ 0-9a-z%.]{0,8})?(&ndigits=[0-9]{0,4})?",
            "[=&%0-9a-fA-F]{0,20}",
        ]),
        inm in proptest::option::of(".{0,20}"),
        algo in prop_oneof![Just(Algorithm::Machin), Just(Algorithm::Chudnovsky)],
    ) {
        let reply = respond(algo, &method, query.as_deref(), inm.as_deref(), 2000);
        prop_assert!([200, 304, 400, 405].contains(&reply.status), "status {}", reply.status);
        if method != "HEAD" && reply.status != 304 {
            let body: Value = serde_json::from_slice(&reply.body).expect("JSON body");
            prop_assert!(body.is_object());
        } else {
            prop_assert!(reply.body.is_empty());
        }
    }
}
