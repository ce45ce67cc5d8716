//! The iris classifier component: wasm glue only. Per request it reads the
//! model file the host grants at `/model` (no caching, so replacing the file
//! changes the next answer), reads the body of a POST up to iris-core's size
//! limit, and hands everything to [`iris_core::respond`], whose [`Reply`] it
//! returns as the HTTP response (fn-reply's `spin` feature).

use futures::StreamExt;
use iris_core::{load_model, respond, ModelError, Reply, MAX_BODY_BYTES};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::Request;

/// Where the manifest's `files` entry mounts `models/iris/vN`.
const MODEL_PATH: &str = "/model/model.json";

#[spin_sdk::http_service]
async fn handle(req: Request) -> Result<Reply, spin_sdk::http::Error> {
    let method = req.method().as_str().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let mut body = Vec::new();
    if method == "POST" {
        // Stop one byte past the limit: respond() then answers 413.
        let mut chunks = req.into_body().stream();
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk?);
            if body.len() > MAX_BODY_BYTES {
                break;
            }
        }
    }

    let model = match std::fs::read(MODEL_PATH) {
        Ok(bytes) => load_model(&bytes),
        Err(e) => Err(ModelError::Missing(format!(
            "cannot read {MODEL_PATH}: {e}"
        ))),
    };
    Ok(respond(
        &method,
        query.as_deref(),
        content_type.as_deref(),
        &body,
        model.as_ref().map_err(Clone::clone),
    ))
}
