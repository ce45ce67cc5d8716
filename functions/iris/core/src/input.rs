//! Request input: the `sl`, `sw`, `pl`, `pw` query parameters and the `{"instances": [...]}`
//! JSON body decoded into [`Features`]. The iris measurements are four named features in cm,
//! each greater than 0 and at most 100; decoding and every rule (and message) are
//! `fn-features`', which the generic ONNX model server uses for its models' features too.
//! Errors are plain sentences naming the field and the rule; the HTTP layer turns them into
//! 400/413 replies.

use std::sync::LazyLock;

use fn_features::Feature;
pub use fn_features::{InputError, MAX_BATCH};

use crate::model::{Features, FEATURES};

/// Smallest value accepted is anything above this, in cm.
pub const MIN_CM_EXCLUSIVE: f64 = 0.0;
/// Largest value accepted, in cm.
pub const MAX_CM: f64 = 100.0;

/// The four measurements with their unit and bounds, in [`FEATURES`] order.
static MEASUREMENTS: LazyLock<[Feature; 4]> = LazyLock::new(|| {
    FEATURES.map(|name| Feature {
        name: name.to_owned(),
        unit: Some("cm".to_owned()),
        greater_than: Some(MIN_CM_EXCLUSIVE),
        at_least: None,
        less_than: None,
        at_most: Some(MAX_CM),
    })
});

/// Quotes user input for an error message, cut to a readable length.
pub(crate) use fn_features::shown;

/// The row in [`FEATURES`] order (fn-features returns exactly one value per feature).
fn features(row: Vec<f64>) -> Features {
    row.try_into()
        .expect("fn-features returns one value per feature")
}

/// Parses a query string (without the `?`) that must hold exactly the
/// parameters `sl`, `sw`, `pl` and `pw`, each once.
pub fn parse_query(query: Option<&str>) -> Result<Features, InputError> {
    fn_features::parse_query(&*MEASUREMENTS, query).map(features)
}

/// Parses a batch body `{"instances": [...]}` (TF Serving / KServe V1
/// protocol). Each instance is `[sl, sw, pl, pw]` or
/// `{"sl":…, "sw":…, "pl":…, "pw":…}`.
pub fn parse_instances(body: &[u8]) -> Result<Vec<Features>, InputError> {
    let rows = fn_features::parse_instances(&*MEASUREMENTS, true, body)?;
    Ok(rows.into_iter().map(features).collect())
}
