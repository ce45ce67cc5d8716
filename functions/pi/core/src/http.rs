//! The `/api/v0/pi` HTTP contract, independent of any HTTP library: a
//! request is reduced to its method, raw query string and `If-None-Match`
//! header, and answered with a [`Reply`] (the `fn-reply` crate's, which the
//! components' glue turns into a spin-sdk response).
//!
//! - `GET ?ndigits=N` → 200 `{"ndigits":N,"pi":"3.…"}` (compact JSON, keys in
//!   that order, `N` decimals truncated; 22 when the query has no `ndigits`).
//! - `ndigits` must be plain ASCII decimal digits (`0`–`9`, leading zeros
//!   allowed) and at most the deployment's maximum. Everything else is a 400
//!   with `{"error":"…"}` naming the parameter and the rule: an empty value,
//!   a sign (`-5`, `+5`; note that a literal `+` in a query means a space),
//!   spaces, decimals (`5.5`), exponents (`1e6`), a repeated `ndigits`, and
//!   any other parameter name (names are case-sensitive: `NDIGITS=5` is
//!   rejected, not ignored). The query is form-urlencoded: `%37` is `7`.
//! - `HEAD` answers like `GET` without a body (and without computing digits);
//!   any other method is a 405 with `Allow: GET, HEAD`.
//! - Successes are immutable: `Cache-Control: public, max-age=31536000,
//!   immutable` and a strong `ETag` `"pi-N"` (both algorithms give the same
//!   bytes); an `If-None-Match` listing it (or `*`) gets a 304 without body.
//!   Errors carry `Cache-Control: no-store`.

pub use fn_reply::Reply;
use fn_reply::APPLICATION_JSON;

use crate::{pi_string, Algorithm, DEFAULT_MAX_NDIGITS, DEFAULT_NDIGITS};

/// The query parameter.
pub const PARAM: &str = "ndigits";
/// The `Cache-Control` of successful (and 304) responses.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// The component variable a deployment sets the maximum `ndigits` with (Spin's
/// `[component.NAME.variables]`).
pub const MAX_NDIGITS_VARIABLE: &str = "max_ndigits";
/// Longest piece of a client's input quoted back in an error message.
const MAX_ECHO_CHARS: usize = 40;

/// The error reply of this contract: `{"error": message}`, never cached.
fn error_reply(status: u16, message: &str) -> Reply {
    Reply::json_error(status, message).with_header("cache-control", "no-store")
}

/// The maximum `ndigits` from the deployment's `max_ndigits` variable:
/// [`DEFAULT_MAX_NDIGITS`] when unset, otherwise a non-negative decimal
/// integer. An invalid setting is a deployment error, answered with a 500
/// whose message says so (the client cannot fix it).
pub fn max_ndigits_setting(value: Option<&str>) -> Result<usize, Reply> {
    match value {
        None => Ok(DEFAULT_MAX_NDIGITS),
        Some(v) => parse_digits(v).ok_or_else(|| {
            error_reply(
                500,
                &format!(
                    "invalid deployment setting: the {MAX_NDIGITS_VARIABLE} variable must be a \
                     non-negative integer, got {}",
                    quote(v)
                ),
            )
        }),
    }
}

/// Answers one request. `method` is the HTTP method ("GET", "HEAD", …),
/// `query` the raw query string without the `?` (if the URL has one),
/// `if_none_match` the request's `If-None-Match` header.
pub fn respond(
    algo: Algorithm,
    method: &str,
    query: Option<&str>,
    if_none_match: Option<&str>,
    max_ndigits: usize,
) -> Reply {
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            return error_reply(
                405,
                &format!("method {} is not allowed: use GET or HEAD", quote(method)),
            )
            .with_header("allow", "GET, HEAD");
        }
    };
    let ndigits = match parse_query(query.unwrap_or(""), max_ndigits) {
        Ok(n) => n,
        Err(message) => {
            let mut reply = error_reply(400, &message);
            if head {
                reply.body.clear();
            }
            return reply;
        }
    };
    let etag = format!("\"pi-{ndigits}\"");
    let mut headers = vec![
        ("cache-control", CACHE_IMMUTABLE.to_owned()),
        ("etag", etag.clone()),
    ];
    if if_none_match.is_some_and(|h| etag_matches(h, &etag)) {
        return Reply {
            status: 304,
            headers,
            body: Vec::new(),
        };
    }
    headers.insert(0, ("content-type", APPLICATION_JSON.to_owned()));
    let body = if head {
        Vec::new()
    } else {
        let pi = pi_string(algo, ndigits);
        format!("{{\"ndigits\":{ndigits},\"pi\":\"{pi}\"}}").into_bytes()
    };
    Reply {
        status: 200,
        headers,
        body,
    }
}

/// Whether an `If-None-Match` value lists `etag` (weak comparison, as
/// RFC 9110 prescribes for this header) or is `*`.
fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

/// The requested `ndigits`, or the error message for the client.
fn parse_query(query: &str, max_ndigits: usize) -> Result<usize, String> {
    let mut ndigits: Option<String> = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if name != PARAM {
            return Err(format!(
                "unknown query parameter {}: the only parameter is {PARAM}",
                quote(&name)
            ));
        }
        if ndigits.is_some() {
            return Err(format!("{PARAM} must be given at most once"));
        }
        ndigits = Some(value.into_owned());
    }
    let Some(value) = ndigits else {
        return Ok(DEFAULT_NDIGITS);
    };
    if value.is_empty() {
        return Err(format!(
            "{PARAM} must be a non-negative integer, got an empty value"
        ));
    }
    if !value.bytes().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{PARAM} must be a non-negative integer (decimal digits only), got {}",
            quote(&value)
        ));
    }
    match parse_digits(&value) {
        Some(n) if n <= max_ndigits => Ok(n),
        _ => Err(format!(
            "{PARAM} must be at most {max_ndigits}, got {}",
            quote(&value)
        )),
    }
}

/// A string of ASCII digits as a `usize`; `None` if empty, not all digits,
/// or too large.
fn parse_digits(s: &str) -> Option<usize> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `s` as a JSON-style quoted string, cut to [`MAX_ECHO_CHARS`] characters.
fn quote(s: &str) -> String {
    let mut cut: String = s.chars().take(MAX_ECHO_CHARS).collect();
    if cut.len() < s.len() {
        cut.push('…');
    }
    serde_json::Value::String(cut).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_list_matching() {
        assert!(etag_matches("\"pi-5\"", "\"pi-5\""));
        assert!(etag_matches("\"a\", W/\"pi-5\"", "\"pi-5\""));
        assert!(etag_matches("*", "\"pi-5\""));
        assert!(!etag_matches("\"pi-50\"", "\"pi-5\""));
        assert!(!etag_matches("", "\"pi-5\""));
    }

    #[test]
    fn quoting_cuts_long_input() {
        assert_eq!(quote("abc"), "\"abc\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "9".repeat(100);
        assert_eq!(quote(&long), format!("\"{}…\"", "9".repeat(40)));
    }
}
