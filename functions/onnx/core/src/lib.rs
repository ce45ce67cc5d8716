//! `onnx-core`: a generic model server for ONNX models (scikit-learn's exports in particular),
//! as pure Rust with no wasm or server imports, so the wasm component and native tests share
//! one implementation.
//!
//! * [`metadata`]: `model.json` (`fnhost-onnx-model/1`), the optional file beside `model.onnx`.
//! * [`model`]: loading (digest check, tract parse and optimisation) and running a model.
//! * [`trees`]: the tree-ensemble operators (fast classifier, the regressor tract lacks).
//! * [`tensor`]: protocol datatypes and JSON tensor data.
//! * [`features`]: rows of named features (query strings, `instances`) and their rules: the
//!   `fn-features` crate the iris function parses with too.
//! * [`v2`]: the Open Inference Protocol's metadata and inference.
//! * [`http`]: every endpoint as the pure function [`respond`].
//! * [`cache`]: the model of a directory, loaded once per version of its files.
//! * [`describe`]: a model file's inputs, outputs and classes, and the `model.json` that serves it.

pub mod cache;
pub mod describe;
pub use fn_features as features;
pub mod http;
pub mod metadata;
pub mod model;
pub mod tensor;
pub mod trees;
pub mod v2;

pub use cache::{Lookup, ModelCache, METADATA_FILE, MODEL_FILE};
pub use fn_reply::Reply;
pub use http::{respond, Request, MAX_BODY_BYTES};
pub use model::{Model, ModelError};
