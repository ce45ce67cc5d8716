//! The spin-sdk glue shared by both pi components (`pi-picrunch`, `pi-chudnovsky`): translate a
//! spin-sdk request into a call of [`pi_core::http::respond`] with the component's algorithm,
//! and its `Reply` into a response. The maximum `ndigits` comes from the `PI_MAX_NDIGITS`
//! environment variable (the manifest's `environment`). Included by each component's lib.rs
//! with `#[path]`, so the two components differ only in the algorithm they name.

use bytes::Bytes;
use pi_core::http::{max_ndigits_setting, respond, Reply, MAX_NDIGITS_ENV};
use pi_core::Algorithm;
use spin_sdk::http::{FullBody, HeaderName, HeaderValue, Request, Response, StatusCode};

pub fn serve(algorithm: Algorithm, req: Request) -> Response<FullBody<Bytes>> {
    let env = std::env::var(MAX_NDIGITS_ENV).ok();
    let reply = match max_ndigits_setting(env.as_deref()) {
        Ok(max_ndigits) => {
            let if_none_match = req
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok());
            respond(
                algorithm,
                req.method().as_str(),
                req.uri().query(),
                if_none_match,
                max_ndigits,
            )
        }
        Err(reply) => reply,
    };
    into_response(reply)
}

fn into_response(reply: Reply) -> Response<FullBody<Bytes>> {
    let mut response = Response::new(FullBody::new(Bytes::from(reply.body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in reply.headers {
        // pi-core's header names are static lowercase tokens and its values
        // ASCII; a value that still fails to convert is dropped, not a panic.
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.append(HeaderName::from_static(name), value);
        }
    }
    response
}
