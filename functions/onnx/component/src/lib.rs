//! The generic ONNX model component: wasm glue only. It asks the instance's [`ModelCache`] for
//! the model in the directory the host grants at `/model` (loaded once per version of the
//! files, kept while the instance is reused; the files' stamps taken through the preopened
//! directory, fn-file-stamp's `wasi`), reads the body of a POST up to onnx-core's size limit,
//! and hands everything to [`onnx_core::respond`], whose [`Reply`] it returns as the HTTP
//! response (fn-reply's `spin` feature). A `server-timing` header says how long loading the
//! model (when this request loaded it) and answering took inside the guest.

use std::cell::OnceCell;
use std::io;
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use fn_file_stamp::{wasi, FileStamp};
use futures::StreamExt;
use onnx_core::{respond, ModelCache, Reply, Request, MAX_BODY_BYTES};
use spin_sdk::http::body::IncomingBodyExt;
use wasip2::filesystem::types::Descriptor;

/// Where the manifest's `files` entry mounts the model directory.
const MODEL_DIR: &str = "/model";

/// One per instance: a reused instance (fnhost's `instance_reuse`) keeps its loaded model.
static CACHE: Mutex<ModelCache> = Mutex::new(ModelCache::new());

thread_local! {
    /// The `/model` directory the host grants, once looked up per instance.
    static MODEL_DIR_DESCRIPTOR: OnceCell<Option<Descriptor>> = const { OnceCell::new() };
}

/// The stamp of a file in `/model`.
fn stamp(name: &str) -> io::Result<FileStamp> {
    MODEL_DIR_DESCRIPTOR.with(|dir| match dir.get_or_init(|| wasi::preopen(MODEL_DIR)) {
        Some(dir) => wasi::stamp_at(dir, name),
        None => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the host grants no directory at {MODEL_DIR}"),
        )),
    })
}

#[spin_sdk::http_service]
async fn handle(req: spin_sdk::http::Request) -> Result<Reply, spin_sdk::http::Error> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
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

    let started = Instant::now();
    let now = wasi::now();
    // No await while the lock is held: requests on one instance take turns here.
    let lookup = CACHE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .lookup(Path::new(MODEL_DIR), now, stamp);
    let request = Request {
        method: &method,
        path: &path,
        query: query.as_deref(),
        content_type: content_type.as_deref(),
        body: &body,
    };
    let reply = respond(&request, lookup.model.as_deref());
    let mut timing = Vec::new();
    if let Some(load) = lookup.loaded_in {
        timing.push(format!("load;dur={:.3}", load.as_secs_f64() * 1e3));
    }
    timing.push(format!(
        "total;dur={:.3}",
        started.elapsed().as_secs_f64() * 1e3
    ));
    Ok(reply.with_header("server-timing", timing.join(", ")))
}
