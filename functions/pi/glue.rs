//! The spin-sdk glue shared by both pi components (`pi-picrunch`, `pi-chudnovsky`): translate a
//! spin-sdk request into a call of [`pi_core::http::respond`] with the component's algorithm and
//! hand back its `Reply`, which the handler returns as the response (fn-reply's `spin` feature).
//! The maximum `ndigits` is the component variable `max_ndigits` (the manifest's
//! `[component.NAME.variables]`; the default maximum when the component declares none, or when
//! the crate is built without its `variables` feature, for hosts without Spin's variables). Included
//! by each component's lib.rs with `#[path]`, so the two components differ only in the
//! algorithm they name.

use pi_core::http::{max_ndigits_setting, respond, Reply};
use pi_core::Algorithm;
use spin_sdk::http::Request;

pub async fn serve(algorithm: Algorithm, req: Request) -> Reply {
    let setting = match max_ndigits_variable().await {
        Ok(setting) => setting,
        Err(reply) => return reply,
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

/// The `max_ndigits` variable's value, `None` when the deployment does not set it.
#[cfg(feature = "variables")]
async fn max_ndigits_variable() -> Result<Option<String>, Reply> {
    use pi_core::http::MAX_NDIGITS_VARIABLE;
    use spin_sdk::variables;
    match variables::get(MAX_NDIGITS_VARIABLE).await {
        Ok(value) => Ok(Some(value)),
        Err(variables::Error::Undefined(_)) => Ok(None),
        Err(e) => Err(Reply::json_error(
            500,
            &format!("cannot read the {MAX_NDIGITS_VARIABLE} variable: {e}"),
        )),
    }
}

/// Built without Spin's variables: the default maximum.
#[cfg(not(feature = "variables"))]
async fn max_ndigits_variable() -> Result<Option<String>, Reply> {
    Ok(None)
}
