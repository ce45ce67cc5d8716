//! The spin-sdk glue shared by both pi components (`pi-picrunch`, `pi-chudnovsky`): translate a
//! spin-sdk request into a call of [`pi_core::http::respond`] with the component's algorithm and
//! hand back its `Reply`, which the handler returns as the response (fn-reply's `spin` feature).
//! The maximum `ndigits` is the component variable `max_ndigits` (the manifest's
//! `[component.NAME.variables]`; the default maximum when the component declares none). Included
//! by each component's lib.rs with `#[path]`, so the two components differ only in the
//! algorithm they name.

use pi_core::http::{max_ndigits_setting, respond, Reply, MAX_NDIGITS_VARIABLE};
use pi_core::Algorithm;
use spin_sdk::http::Request;
use spin_sdk::variables;

pub async fn serve(algorithm: Algorithm, req: Request) -> Reply {
    let setting = match variables::get(MAX_NDIGITS_VARIABLE).await {
        Ok(value) => Some(value),
        Err(variables::Error::Undefined(_)) => None,
        Err(e) => {
            return Reply::json_error(
                500,
                &format!("cannot read the {MAX_NDIGITS_VARIABLE} variable: {e}"),
            )
        }
    };
    match max_ndigits_setting(setting.as_deref()) {
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
