//! `pi-chudnovsky`: the `/api/v0/pi` component serving algorithm v2 (the Chudnovsky series
//! with binary splitting). The HTTP translation is shared with `pi-picrunch` (`../../glue.rs`).

#[path = "../../glue.rs"]
mod glue;

#[spin_sdk::http_service]
async fn handle(req: spin_sdk::http::Request) -> impl spin_sdk::http::IntoResponse {
    glue::serve(pi_core::Algorithm::Chudnovsky, req).await
}
