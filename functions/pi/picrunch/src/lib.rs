//! `pi-picrunch`: the `/api/v0/pi` component serving algorithm v1 (Machin's formula after Don
//! Cross's picrunch). The HTTP translation is shared with `pi-chudnovsky` (`../../glue.rs`).

#[path = "../../glue.rs"]
mod glue;

#[spin_sdk::http_service]
async fn handle(req: spin_sdk::http::Request) -> impl spin_sdk::http::IntoResponse {
    glue::serve(pi_core::Algorithm::Machin, req).await
}
