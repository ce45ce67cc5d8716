//! `iris-core`: everything the iris classifier function does, as pure Rust with
//! no wasm or server imports, so the wasm component, a native control server and
//! the trainer share one implementation.
//!
//! * [`model`]: the `fnhost-iris-model/1` artifact, loading it, predicting.
//! * [`input`]: query/JSON decoding and the validation rules for measurements.
//! * [`http`]: the `/api/v01/classify` contract as the pure function [`respond`].
//! * [`model_file`]: the model file as last read, and when a stat may stand in for a read.

pub mod http;
pub mod input;
pub mod model;
pub mod model_file;

pub use http::{respond, Reply, ALLOW, MAX_BODY_BYTES};
pub use input::{parse_instances, parse_query, InputError, MAX_BATCH};
pub use model::{
    load_model, squared_distance, Artifact, Features, KnnParameters, LogisticRegressionParameters,
    Model, ModelError, Prediction, FEATURES, FORMAT, KIND_K_NEAREST_NEIGHBORS,
    KIND_LOGISTIC_REGRESSION, METRIC_EUCLIDEAN,
};
pub use model_file::{FileStamp, ModelFile};

/// The route this function serves.
pub const ROUTE: &str = "/api/v01/classify";
