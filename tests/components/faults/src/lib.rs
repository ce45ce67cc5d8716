//! `test-faults`: a WASIp3 (`wasi:http/handler@0.3.0`) test component, built with
//! spin-sdk 7, that misbehaves on request. The host's integration tests mount it
//! under any route prefix and pick a behaviour with the request path's last
//! segment: `ok`, `echo`, `trap`, `panic`, `loop`, `alloc`, `sleep?ms=N`,
//! `big?bytes=N`, `endless`, `status?code=N`, `env`, `files?path=P`,
//! `fetch?url=U` (an outgoing HTTP request), `print?bytes=N` (writes to stdout and stderr: a
//! line that imitates the host's JSON log, a terminal escape, then N bytes of lines) and
//! `version`; anything else is a 404. It exercises the host's handling of traps,
//! panics, CPU and memory limits, timeouts, streamed and never-ending bodies,
//! and what environment and files the guest is granted.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::{HeaderName, HeaderValue, IntoResponse, Request, Response, StatusCode};
use spin_sdk::wasip3::http::types::ErrorCode;

/// Size of the chunks `big` streams its body in.
const BIG_CHUNK: usize = 64 * 1024;
/// Size of the chunks `endless` streams its body in.
const ENDLESS_CHUNK: usize = 1024;
/// Size of each allocation `alloc` makes and keeps.
const ALLOC_CHUNK: usize = 1024 * 1024;

#[spin_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    route(req).await
}

async fn route(req: Request) -> Result<Response<FaultBody>, ErrorCode> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let params = parse_query(query.as_deref().unwrap_or_default());
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    match last.as_str() {
        "ok" => Ok(text(StatusCode::OK, "ok")),
        "echo" => {
            let method = req.method().as_str().to_owned();
            let mut headers: BTreeMap<String, String> = BTreeMap::new();
            for (name, value) in req.headers() {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                headers
                    .entry(name.as_str().to_owned())
                    .and_modify(|v| {
                        v.push_str(", ");
                        v.push_str(&value);
                    })
                    .or_insert(value);
            }
            let body = req.into_body().bytes().await?;
            Ok(json_response(
                StatusCode::OK,
                &json!({
                    "method": method,
                    "path": path,
                    "query": query,
                    "body_len": body.len(),
                    "headers": headers,
                }),
            ))
        }
        "trap" => trap(),
        "panic" => panic!("test panic"),
        "loop" => spin_forever(),
        "alloc" => allocate_forever(),
        "sleep" => {
            let Some(ms) = param("ms").and_then(|v| v.parse::<u64>().ok()) else {
                return Ok(bad_request("sleep needs ?ms=<milliseconds>"));
            };
            spin_sdk::time::sleep(Duration::from_millis(ms)).await;
            Ok(text(StatusCode::OK, "slept"))
        }
        "big" => {
            let Some(bytes) = param("bytes").and_then(|v| v.parse::<u64>().ok()) else {
                return Ok(bad_request("big needs ?bytes=<count>"));
            };
            Ok(with_content_type(
                Response::new(FaultBody::repeat(Some(bytes), BIG_CHUNK)),
                "application/octet-stream",
            ))
        }
        "print" => {
            let bytes = param("bytes")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            use std::io::Write;
            let mut err = std::io::stderr();
            let _ = writeln!(
                err,
                r#"{{"timestamp":"2026-01-01T00:00:00Z","level":"ERROR","message":"forged by the guest","target":"fnhost::request"}}"#
            );
            let _ = writeln!(err, "\x1b[31mred\x1b[0m and a bell\x07");
            let line = "x".repeat(99);
            let mut written = 0;
            while written < bytes {
                let _ = writeln!(err, "{line}");
                written += 100;
            }
            let _ = writeln!(std::io::stdout(), "hello from the guest");
            Ok(text(StatusCode::OK, "printed"))
        }
        "endless" => Ok(with_content_type(
            Response::new(FaultBody::repeat(None, ENDLESS_CHUNK)),
            "application/octet-stream",
        )),
        "status" => {
            let Some(status) = param("code")
                .and_then(|v| v.parse::<u16>().ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
            else {
                return Ok(bad_request("status needs ?code=<100..=999>"));
            };
            Ok(json_response(status, &json!({ "status": status.as_u16() })))
        }
        "env" => {
            let vars: BTreeMap<String, String> = std::env::vars().collect();
            Ok(json_response(StatusCode::OK, &json!(vars)))
        }
        "files" => {
            let Some(file) = param("path") else {
                return Ok(bad_request("files needs ?path=<file>"));
            };
            match std::fs::read(file) {
                Ok(contents) => Ok(with_content_type(
                    Response::new(FaultBody::once(contents)),
                    "application/octet-stream",
                )),
                Err(err) => Ok(json_response(
                    StatusCode::NOT_FOUND,
                    &json!({ "error": err.to_string() }),
                )),
            }
        }
        "fetch" => {
            let Some(url) = param("url") else {
                return Ok(bad_request("fetch needs ?url=<absolute URL>"));
            };
            let outgoing = match Request::get(url).body(spin_sdk::http::EmptyBody::new()) {
                Ok(r) => r,
                Err(e) => return Ok(bad_request(&format!("bad url: {e}"))),
            };
            match spin_sdk::http::send(outgoing).await {
                Ok(resp) => Ok(json_response(
                    StatusCode::OK,
                    &json!({ "upstream_status": resp.status().as_u16() }),
                )),
                Err(code) => Ok(json_response(
                    StatusCode::BAD_GATEWAY,
                    &json!({ "error": format!("{code:?}") }),
                )),
            }
        }
        "version" => {
            let version = std::env::var("FAULTS_VERSION").unwrap_or_else(|_| "none".to_owned());
            Ok(text(StatusCode::OK, version))
        }
        _ => Ok(json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "unknown fault route" }),
        )),
    }
}

/// Executes the wasm `unreachable` instruction: a trap, not a Rust panic.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Burns CPU forever; `black_box` keeps the optimiser from removing the loop.
fn spin_forever() -> ! {
    let mut counter: u64 = 0;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

/// Allocates 1 MiB chunks, fills each and keeps them all,
/// until the allocator fails (which aborts, i.e. traps, the instance).
fn allocate_forever() -> ! {
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut round: u8 = 0;
    loop {
        round = round.wrapping_add(1);
        // `resize` writes every byte, so each page is really committed.
        let mut chunk = Vec::with_capacity(ALLOC_CHUNK);
        chunk.resize(ALLOC_CHUNK, round | 1);
        kept.push(chunk);
        std::hint::black_box(&mut kept);
    }
}

/// Splits a query string into decoded `(name, value)` pairs.
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` (as a space); malformed escapes are kept as is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn with_content_type(
    mut resp: Response<FaultBody>,
    content_type: &'static str,
) -> Response<FaultBody> {
    resp.headers_mut().insert(
        HeaderName::from_static("content-type"),
        HeaderValue::from_static(content_type),
    );
    resp
}

fn text(status: StatusCode, body: impl Into<String>) -> Response<FaultBody> {
    let mut resp = Response::new(FaultBody::once(body.into().into_bytes()));
    *resp.status_mut() = status;
    with_content_type(resp, "text/plain; charset=utf-8")
}

fn json_response(status: StatusCode, value: &Value) -> Response<FaultBody> {
    let body = serde_json::to_vec(value).expect("serde_json::Value always serialises");
    let mut resp = Response::new(FaultBody::once(body));
    *resp.status_mut() = status;
    with_content_type(resp, "application/json")
}

fn bad_request(message: &str) -> Response<FaultBody> {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }))
}

/// The response body of every route: either one buffer, or `x` bytes streamed
/// in fixed-size chunks, up to a total (`big`) or forever (`endless`).
enum FaultBody {
    Once(Option<Bytes>),
    Repeat {
        /// Bytes still to send; `None` never runs out.
        remaining: Option<u64>,
        /// One full chunk of `x`, shared by every frame.
        chunk: Bytes,
    },
}

impl FaultBody {
    fn once(data: Vec<u8>) -> Self {
        FaultBody::Once(Some(Bytes::from(data)))
    }

    fn repeat(total: Option<u64>, chunk: usize) -> Self {
        FaultBody::Repeat {
            remaining: total,
            chunk: Bytes::from(vec![b'x'; chunk]),
        }
    }
}

impl http_body::Body for FaultBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let frame = match self.get_mut() {
            FaultBody::Once(data) => data.take(),
            FaultBody::Repeat { remaining, chunk } => match remaining {
                Some(0) => None,
                Some(left) => {
                    let len = (chunk.len() as u64).min(*left);
                    *left -= len;
                    Some(chunk.slice(..len as usize))
                }
                None => Some(chunk.clone()),
            },
        };
        Poll::Ready(frame.map(|data| Ok(http_body::Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        matches!(
            self,
            FaultBody::Once(None)
                | FaultBody::Repeat {
                    remaining: Some(0),
                    ..
                }
        )
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            FaultBody::Once(data) => {
                http_body::SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            FaultBody::Repeat {
                remaining: Some(left),
                ..
            } => http_body::SizeHint::with_exact(*left),
            FaultBody::Repeat {
                remaining: None, ..
            } => http_body::SizeHint::new(),
        }
    }
}
