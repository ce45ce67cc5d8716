//! Response helpers shared by the public and admin listeners: JSON bodies, `{"error": ...}`
//! answers, and the header names fnhost adds.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde::Serialize;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

/// The version that answered (`pi@1a2b3c4d`).
pub const VERSION_HEADER: &str = "fnhost-version";
/// That version's label, if it has one.
pub const LABEL_HEADER: &str = "fnhost-version-label";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<ResponseBody> {
    let text = serde_json::to_string(body).expect("fnhost's response types serialise");
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

pub fn error_response(status: StatusCode, message: impl AsRef<str>) -> Response<ResponseBody> {
    json_response(
        status,
        &ErrorBody {
            error: message.as_ref(),
        },
    )
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

/// `{"status":"ok"}`: the process is up and serving.
pub fn healthy() -> Response<ResponseBody> {
    json_response(StatusCode::OK, &Health { status: "ok" })
}

/// A 503 that tells the client when to retry.
pub fn busy_response(message: impl AsRef<str>) -> Response<ResponseBody> {
    let mut resp = error_response(StatusCode::SERVICE_UNAVAILABLE, message);
    resp.headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

pub fn full(body: impl Into<Bytes>) -> ResponseBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}
