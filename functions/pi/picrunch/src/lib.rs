//! `pi-picrunch`: the `/api/v0/pi` component serving algorithm v1
//! (Machin's formula after Don Cross's picrunch). It only translates between spin-sdk's HTTP
//! types and [`pi_core::http::respond`]; the maximum `ndigits` comes from the
//! `PI_MAX_NDIGITS` environment variable (the manifest's `environment`).

use bytes::Bytes;
use pi_core::http::{max_ndigits_setting, respond, Reply, MAX_NDIGITS_ENV};
use pi_core::Algorithm;
use spin_sdk::http::{
    FullBody, HeaderName, HeaderValue, IntoResponse, Request, Response, StatusCode,
};

const ALGORITHM: Algorithm = Algorithm::Machin;

#[spin_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let env = std::env::var(MAX_NDIGITS_ENV).ok();
    let reply = match max_ndigits_setting(env.as_deref()) {
        Ok(max_ndigits) => {
            let if_none_match = req
                .headers()
                .get("if-none-match")
                .and_then(|v| v.to_str().ok());
            respond(
                ALGORITHM,
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
