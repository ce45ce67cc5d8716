//! The spin-sdk glue shared by both pi components (`pi-picrunch`, `pi-chudnovsky`): translate a
//! spin-sdk request into a call of [`pi_core::http::respond`] with the component's algorithm and
//! hand back its `Reply`, which the handler returns as the response (fn-reply's `spin` feature).
//! The maximum `ndigits` comes from the `PI_MAX_NDIGITS` environment variable (the manifest's
//! `environment`). Included by each component's lib.rs with `#[path]`, so the two components
//! differ only in the algorithm they name.

use pi_core::http::{max_ndigits_setting, respond, Reply, MAX_NDIGITS_ENV};
use pi_core::Algorithm;
use spin_sdk::http::Request;

pub fn serve(algorithm: Algorithm, req: Request) -> Reply {
    let env = std::env::var(MAX_NDIGITS_ENV).ok();
    match max_ndigits_setting(env.as_deref()) {
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
    }
}
