//! The iris classifier component: wasm glue only. Per request it looks at the
//! model file the host grants at `/model` (so replacing the file changes the
//! next answer), reads the body of a POST up to iris-core's size limit, and
//! hands everything to [`iris_core::respond`], whose [`Reply`] it returns as
//! the HTTP response (fn-reply's `spin` feature). An instance that serves many
//! requests (`instance_reuse`) keeps the model it parsed: it reads the file again
//! only when a stat of it does not prove it unchanged, and parses again only when
//! the bytes differ (iris-core's `model_file`, on fn-file-stamp's rule, says when a stat is
//! proof).

use std::cell::{OnceCell, RefCell};
use std::time::Duration;

use fn_file_stamp::wasi;
use futures::StreamExt;
use iris_core::{respond, FileStamp, Model, ModelError, ModelFile, Reply, MAX_BODY_BYTES};
use spin_sdk::http::body::IncomingBodyExt;
use spin_sdk::http::Request;
use wasip2::filesystem::types::Descriptor;

/// Where the manifest's `files` entry mounts `models/iris/vN`.
const MODEL_PATH: &str = "/model/model.json";
const MODEL_DIR_PATH: &str = "/model";
const MODEL_FILE_NAME: &str = "model.json";

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
    /// The model file as last read (a fresh instance per request starts empty).
    static MODEL_FILE: RefCell<ModelFile> = const { RefCell::new(ModelFile::new()) };
    /// The `/model` directory the host grants, once looked up per instance.
    static MODEL_DIR: OnceCell<Option<Descriptor>> = const { OnceCell::new() };
}

/// Calls `f` with the model, read and parsed only when the file may have changed.
fn with_model<T>(f: impl FnOnce(Result<&Model, ModelError>) -> T) -> T {
    MODEL_FILE.with_borrow_mut(|file| {
        f(file.model(stamp, || {
            std::fs::read(MODEL_PATH).map_err(|e| format!("cannot read {MODEL_PATH}: {e}"))
        }))
    })
}

/// The model file's stamp and the time just before it was taken, or `None` when it cannot be
/// had (no `/model` preopen, no file).
fn stamp() -> Option<(FileStamp, Duration)> {
    let now = wasi::now();
    MODEL_DIR.with(|dir| {
        let dir = dir.get_or_init(|| wasi::preopen(MODEL_DIR_PATH)).as_ref()?;
        let stamp = wasi::stamp_at(dir, MODEL_FILE_NAME).ok()?;
        Some((stamp, now))
    })
}
