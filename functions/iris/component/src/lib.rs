//! The iris classifier component: wasm glue only. Per request it reads the
//! model file the host grants at `/model` (so replacing the file changes the
//! next answer), reads the body of a POST up to iris-core's size limit, and
//! hands everything to [`iris_core::respond`], whose [`Reply`] it returns as
//! the HTTP response (fn-reply's `spin` feature). An instance that serves many
//! requests (`instance_reuse`) parses the model again only when the file's
//! bytes change.

use std::cell::RefCell;

use futures::StreamExt;
use iris_core::{load_model, respond, Model, ModelError, Reply, MAX_BODY_BYTES};
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

    Ok(with_model(|model| {
        respond(
            &method,
            query.as_deref(),
            content_type.as_deref(),
            &body,
            model,
        )
    }))
}

thread_local! {
    /// The model file's bytes as last read, and what they parsed to (errors included: the
    /// same bytes give the same answer). A fresh instance per request starts empty.
    static LAST_MODEL: RefCell<Option<(Vec<u8>, Result<Model, ModelError>)>> =
        const { RefCell::new(None) };
}

/// Reads the model file and calls `f` with its model, parsed unless the bytes are those
/// this instance parsed last.
fn with_model<T>(f: impl FnOnce(Result<&Model, ModelError>) -> T) -> T {
    let bytes = match std::fs::read(MODEL_PATH) {
        Ok(bytes) => bytes,
        Err(e) => {
            return f(Err(ModelError::Missing(format!(
                "cannot read {MODEL_PATH}: {e}"
            ))))
        }
    };
    LAST_MODEL.with_borrow_mut(|last| {
        if last.as_ref().is_none_or(|(cached, _)| *cached != bytes) {
            let model = load_model(&bytes);
            *last = Some((bytes, model));
        }
        let (_, model) = last.as_ref().expect("set above");
        f(model.as_ref().map_err(Clone::clone))
    })
}
