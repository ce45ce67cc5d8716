//! The model of a mounted directory, loaded once per version of its files and kept for as long
//! as the instance lives (a reused instance serves many requests from one load).
//!
//! Each request stats `model.json` and `model.onnx` (the caller takes the stamps: through WASI
//! in the component, `std` natively). While both stamps are the *settled* stamps the cached
//! model was checked against (fn-file-stamp's rule), that is all; otherwise `model.json`
//! (small) is read, and only when its bytes or `model.onnx`'s stamp differ from what the cached
//! model was loaded from is `model.onnx` read and loaded again. A model is served only when
//! `model.onnx`'s SHA-256 is the one `model.json` records, so a half-written or half-replaced
//! pair answers 503 until both files agree, never a mix of the two. Failures are cached like
//! models, so a broken pair is not parsed again on every request.

use std::io::{self, ErrorKind};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fn_file_stamp::FileStamp;

use crate::model::{Model, ModelError};

/// The graph, in the mounted directory.
pub const MODEL_FILE: &str = "model.onnx";
/// The optional metadata, in the mounted directory.
pub const METADATA_FILE: &str = "model.json";

/// What stats of the directory's two files say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamps {
    /// `None`: there is no `model.json`.
    metadata: Option<FileStamp>,
    onnx: FileStamp,
}

impl Stamps {
    fn settled(&self, now: Duration) -> bool {
        self.onnx.settled(now) && self.metadata.is_none_or(|m| m.settled(now))
    }
}

/// What a load was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    metadata: Option<Vec<u8>>,
    onnx: FileStamp,
}

/// A load, and the settled stamps it was last checked against (`None`: check by reading).
#[derive(Debug)]
struct Entry {
    key: Key,
    model: Result<Arc<Model>, ModelError>,
    settled: Option<Stamps>,
}

/// The model last loaded from a directory (or why it could not be).
#[derive(Debug, Default)]
pub struct ModelCache {
    entry: Option<Entry>,
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

    /// The model in `dir`, from the cache when its files are unchanged. `stamp` stats a file of
    /// `dir` by name (no such file is [`ErrorKind::NotFound`]); `now` is the time, since the
    /// Unix epoch, just before this call.
    pub fn lookup(
        &mut self,
        dir: &Path,
        now: Duration,
        stamp: impl Fn(&str) -> io::Result<FileStamp>,
    ) -> Lookup {
        let missing = |file: &str, e: io::Error| Lookup {
            model: Err(ModelError::Missing(format!(
                "cannot read {}: {e}",
                dir.join(file).display()
            ))),
            loaded_in: None,
        };
        let stamps = Stamps {
            metadata: match stamp(METADATA_FILE) {
                Ok(s) => Some(s),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return missing(METADATA_FILE, e),
            },
            onnx: match stamp(MODEL_FILE) {
                Ok(s) => s,
                Err(e) => return missing(MODEL_FILE, e),
            },
        };
        let settled = stamps.settled(now).then_some(stamps);
        if let Some(entry) = &self.entry {
            if entry.settled.is_some() && entry.settled == settled {
                return Lookup {
                    model: entry.model.clone(),
                    loaded_in: None,
                };
            }
        }
        let metadata = match stamps.metadata {
            None => None,
            Some(_) => match std::fs::read(dir.join(METADATA_FILE)) {
                Ok(bytes) => Some(bytes),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return missing(METADATA_FILE, e),
            },
        };
        let key = Key {
            metadata,
            onnx: stamps.onnx,
        };
        if let Some(entry) = &mut self.entry {
            if entry.key == key {
                entry.settled = settled;
                return Lookup {
                    model: entry.model.clone(),
                    loaded_in: None,
                };
            }
        }
        let started = Instant::now();
        let onnx = match std::fs::read(dir.join(MODEL_FILE)) {
            Ok(bytes) => bytes,
            Err(e) => return missing(MODEL_FILE, e),
        };
        let model = Model::load(&onnx, key.metadata.as_deref()).map(Arc::new);
        let loaded_in = started.elapsed();
        self.entry = Some(Entry {
            key,
            model: model.clone(),
            settled,
        });
        Lookup {
            model,
            loaded_in: Some(loaded_in),
        }
    }

    /// [`lookup`](Self::lookup) with stamps taken by `std` (native servers and tests).
    #[cfg(unix)]
    pub fn lookup_on_unix(&mut self, dir: &Path) -> Lookup {
        use fn_file_stamp::unix;
        self.lookup(dir, unix::now(), |name| unix::stamp(&dir.join(name)))
    }
}
