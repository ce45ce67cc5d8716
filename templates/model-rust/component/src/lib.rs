//! The `{{name}}` component: wasm glue only. Per request it reads the model file the manifest
//! grants at `/model` (so replacing `models/{{name}}/model.json` changes the next answer) and
//! returns what `{{crate}}_core::respond` answers, as JSON.

use spin_sdk::http::{IntoResponse, Request, Response};
use {{crate}}_core::respond;

const MODEL_PATH: &str = "/model/model.json";

#[spin_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let model = std::fs::read(MODEL_PATH).map_err(|e| format!("cannot read {MODEL_PATH}: {e}"));
    let (status, body) = respond(req.method().as_str(), req.uri().query(), model).into_parts();
    let json = serde_json::to_string(&body).expect("the core's answers serialise to JSON");
    // The whole answer is in hand: say how long it is, and the host ends the response with its
    // last byte instead of streaming it chunked until the component closes the body.
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("content-length", json.len())
        .body(json)
        .expect("the core answers valid statuses")
}
