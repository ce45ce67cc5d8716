//! The `{{name}}` component: wasm glue only. Per request it reads the model file the manifest
//! grants at `/model` (so replacing `models/{{name}}/model.json` changes the next answer) and
//! returns what `{{crate}}_core::respond` answers, as JSON.

use spin_sdk::http::{IntoResponse, Json, Request, StatusCode};
use {{crate}}_core::respond;

const MODEL_PATH: &str = "/model/model.json";

#[spin_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let model = std::fs::read(MODEL_PATH).map_err(|e| format!("cannot read {MODEL_PATH}: {e}"));
    let (status, body) = respond(req.method().as_str(), req.uri().query(), model).into_parts();
    let status = StatusCode::from_u16(status).expect("the core answers valid statuses");
    (status, Json(body))
}
