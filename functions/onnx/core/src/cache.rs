//! The model of a mounted directory, loaded once per version of its files and kept for as long
//! as the instance lives (a reused instance serves many requests from one load).
//!
//! Each request reads `model.json` (small) and looks at `model.onnx`'s size and modification
//! time; only when either differs from what the cached model was loaded from is `model.onnx`
//! read and loaded again. A model is served only when `model.onnx`'s SHA-256 is the one
//! `model.json` records, so a half-written or half-replaced pair answers 503 until both files
//! agree, never a mix of the two. Failures are cached like models, so a broken pair is not
//! parsed again on every request.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::model::{Model, ModelError};

/// The graph, in the mounted directory.
pub const MODEL_FILE: &str = "model.onnx";
/// The optional metadata, in the mounted directory.
pub const METADATA_FILE: &str = "model.json";

/// What a load was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    metadata: Option<Vec<u8>>,
    onnx_len: u64,
    onnx_modified: Option<SystemTime>,
}

/// The model last loaded from a directory (or why it could not be).
#[derive(Debug, Default)]
pub struct ModelCache {
    entry: Option<(Key, Result<Arc<Model>, ModelError>)>,
}

/// A model (or why there is none), and how long loading it took if this call loaded it.
pub struct Lookup {
    pub model: Result<Arc<Model>, ModelError>,
    pub loaded_in: Option<Duration>,
}

impl ModelCache {
    pub const fn new() -> ModelCache {
        ModelCache { entry: None }
    }

    /// The model in `dir`, from the cache when its files are unchanged.
    pub fn lookup(&mut self, dir: &Path) -> Lookup {
        let missing = |file: &str, e: std::io::Error| Lookup {
            model: Err(ModelError::Missing(format!(
                "cannot read {}: {e}",
                dir.join(file).display()
            ))),
            loaded_in: None,
        };
        let metadata = match std::fs::read(dir.join(METADATA_FILE)) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return missing(METADATA_FILE, e),
        };
        let onnx_path = dir.join(MODEL_FILE);
        let stat = match std::fs::metadata(&onnx_path) {
            Ok(s) => s,
            Err(e) => return missing(MODEL_FILE, e),
        };
        let key = Key {
            metadata,
            onnx_len: stat.len(),
            onnx_modified: stat.modified().ok(),
        };
        if let Some((cached, model)) = &self.entry {
            if *cached == key {
                return Lookup {
                    model: model.clone(),
                    loaded_in: None,
                };
            }
        }
        let started = Instant::now();
        let onnx = match std::fs::read(&onnx_path) {
            Ok(bytes) => bytes,
            Err(e) => return missing(MODEL_FILE, e),
        };
        let model = Model::load(&onnx, key.metadata.as_deref()).map(Arc::new);
        let loaded_in = started.elapsed();
        self.entry = Some((key, model.clone()));
        Lookup {
            model,
            loaded_in: Some(loaded_in),
        }
    }
}
