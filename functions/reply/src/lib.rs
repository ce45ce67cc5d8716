//! `fn-reply` owns the HTTP reply a function's pure core returns: [`Reply`]
//! (status, headers, body), independent of any server library, with the
//! constructors every function's contract uses ([`Reply::json`] and the
//! `{"error": "…"}` reply [`Reply::json_error`]). A core answers a request with
//! a `Reply`; its wasm glue enables the `spin` feature and returns that `Reply`
//! from its `#[spin_sdk::http_service]` handler, which the feature's
//! `IntoResponse` implementation (and `Reply::into_spin_response`) turns into
//! the response. Cores depend on this crate without the feature, so they stay
//! free of spin-sdk and of wasm imports and are tested natively.
//!
//! ```
//! use fn_reply::Reply;
//!
//! let reply = Reply::json_error(400, "x must be a number").with_header("cache-control", "no-store");
//! assert_eq!(reply.body, br#"{"error":"x must be a number"}"#);
//! assert_eq!(reply.header("Content-Type"), Some("application/json"));
//! ```

use serde::Serialize;

// Compiled for the unit tests too (spin-sdk is also a dev-dependency), so
// `cargo test -p fn-reply` checks the conversion without the feature.
#[cfg(any(feature = "spin", test))]
mod spin;

/// The `Content-Type` of JSON replies.
pub const APPLICATION_JSON: &str = "application/json";

/// An HTTP response as a function's core builds it, for the glue to translate
/// into its runtime's type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// In the order they are sent. Names are lowercase HTTP tokens; a name may
    /// appear more than once (each is sent).
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// `body` as compact JSON, with `Content-Type: application/json`.
    ///
    /// Panics if `body`'s `Serialize` implementation fails (for serde_json: a
    /// map whose keys are not strings), which is a bug in the caller's type,
    /// not something a request can cause.
    pub fn json(status: u16, body: &impl Serialize) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", APPLICATION_JSON.to_owned())],
            body: serde_json::to_vec(body).expect("reply body serialises to JSON"),
        }
    }

    /// The error reply: `{"error":"<message>"}` (compact, the message escaped
    /// as a JSON string), with `Content-Type: application/json`.
    pub fn json_error(status: u16, message: &str) -> Reply {
        #[derive(Serialize)]
        struct ErrorBody<'a> {
            error: &'a str,
        }
        Reply::json(status, &ErrorBody { error: message })
    }

    /// This reply with one more header, sent after the ones it has.
    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of the first header named `name` (compared
    /// case-insensitively, as HTTP does), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_is_one_compact_escaped_field() {
        let reply = Reply::json_error(400, "got \"5.5\", want 0–9\n");
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.headers,
            vec![("content-type", "application/json".to_owned())]
        );
        assert_eq!(
            String::from_utf8(reply.body).unwrap(),
            "{\"error\":\"got \\\"5.5\\\", want 0–9\\n\"}"
        );
    }

    #[test]
    fn headers_keep_their_order_and_are_found_case_insensitively() {
        let reply = Reply::json(200, &[1, 2])
            .with_header("etag", "\"a\"")
            .with_header("etag", "\"b\"");
        assert_eq!(reply.body, b"[1,2]");
        let names: Vec<_> = reply.headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["content-type", "etag", "etag"]);
        assert_eq!(reply.header("ETag"), Some("\"a\""));
        assert_eq!(reply.header("allow"), None);
    }
}
