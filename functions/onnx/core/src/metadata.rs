//! The optional metadata file beside `model.onnx`, `model.json` (format `fnhost-onnx-model/1`,
//! documented in `functions/onnx/README.md`): its serde types and the rules a file must pass on
//! its own. The rules that need the graph (names exist, widths agree) are checked where the
//! graph is loaded, in `model.rs`.

use serde::de::IgnoredAny;
use serde::Deserialize;

pub use fn_features::Feature;

use crate::model::ModelError;

/// The value of `format` this build reads.
pub const FORMAT: &str = "fnhost-onnx-model/1";

/// `model.json` as stored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub format: String,
    /// The model's name in `/v2/models/{name}` and `/v1/models/{name}`.
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of `model.onnx`: the pair is served only while the file has this digest.
    pub model_sha256: String,
    /// The graph input the features feed; may be left out when the graph has one input.
    #[serde(default)]
    pub input: Option<String>,
    /// Which graph outputs carry the prediction.
    #[serde(default)]
    pub outputs: OutputNames,
    /// The columns of the input, in order: named query parameters and named instances.
    #[serde(default)]
    pub features: Option<Vec<Feature>>,
    /// Class names: `classes[i]` is label `i` and column `i` of the probabilities.
    #[serde(default)]
    pub classes: Option<Vec<String>>,
    /// The key of the prediction in feature-route replies (`species` for iris).
    #[serde(default)]
    pub label_field: Option<String>,
    /// How the model was made (estimator, parameters, data, library versions): informative.
    #[serde(default)]
    pub training: Option<IgnoredAny>,
}

/// Graph output names of the prediction: `label` (and `probabilities`) for a classifier,
/// `value` for a regressor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputNames {
    pub label: Option<String>,
    pub probabilities: Option<String>,
    pub value: Option<String>,
}

fn corrupt(msg: impl Into<String>) -> ModelError {
    ModelError::Corrupt(msg.into())
}

/// Parses `model.json` and checks the rules that need no graph.
pub fn parse_metadata(bytes: &[u8]) -> Result<Metadata, ModelError> {
    #[derive(Deserialize)]
    struct FormatOnly {
        format: Option<String>,
    }
    let format: FormatOnly = serde_json::from_slice(bytes)
        .map_err(|e| corrupt(format!("model.json is not valid JSON: {e}")))?;
    match format.format.as_deref() {
        Some(FORMAT) => {}
        Some(other) => {
            return Err(ModelError::Unsupported(format!(
                "model.json has format `{other}`; this build reads `{FORMAT}`"
            )))
        }
        None => return Err(corrupt("model.json has no `format`")),
    }
    let m: Metadata =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("model.json: {e}")))?;
    if m.name.is_empty() || m.version.is_empty() {
        return Err(corrupt(
            "model.json: `name` and `version` must not be empty",
        ));
    }
    if m.name.contains('/') || m.name.contains(':') {
        return Err(corrupt(format!(
            "model.json: name `{}` must not contain `/` or `:` (it is part of URL paths)",
            m.name
        )));
    }
    let digest = &m.model_sha256;
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(corrupt(format!(
            "model.json: `model_sha256` must be 64 hex digits, got `{digest}`"
        )));
    }
    if let Some(features) = &m.features {
        if features.is_empty() {
            return Err(corrupt("model.json: `features` is empty"));
        }
        for (i, f) in features.iter().enumerate() {
            if f.name.is_empty() || features[..i].iter().any(|g| g.name == f.name) {
                return Err(corrupt(format!(
                    "model.json: feature name `{}` is empty or repeated",
                    f.name
                )));
            }
            let bounds = [f.greater_than, f.at_least, f.less_than, f.at_most];
            if bounds.iter().flatten().any(|b| !b.is_finite()) {
                return Err(corrupt(format!(
                    "model.json: feature `{}` has a non-finite bound",
                    f.name
                )));
            }
        }
    }
    if let Some(classes) = &m.classes {
        if classes.is_empty() {
            return Err(corrupt("model.json: `classes` is empty"));
        }
        for (i, c) in classes.iter().enumerate() {
            if c.is_empty() || classes[..i].contains(c) {
                return Err(corrupt(format!(
                    "model.json: class name `{c}` is empty or repeated"
                )));
            }
        }
    }
    let o = &m.outputs;
    if o.value.is_some() && (o.label.is_some() || o.probabilities.is_some()) {
        return Err(corrupt(
            "model.json: `outputs` names a regressor's `value` and a classifier's `label`/`probabilities`",
        ));
    }
    if o.probabilities.is_some() && m.classes.is_none() {
        return Err(corrupt(
            "model.json: `outputs.probabilities` needs `classes` to name its columns",
        ));
    }
    if m.features.is_some() && o.label.is_none() && o.value.is_none() {
        return Err(corrupt(
            "model.json: `features` needs `outputs.label` or `outputs.value` to answer with",
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "4ec71b8c0d94657e6046d5e751b6a3c7de57d0faf23ecd0589293d5674f05e4a";

    fn with(extra: &str) -> String {
        format!(
            r#"{{"format":"{FORMAT}","name":"m","version":"1","model_sha256":"{DIGEST}"{extra}}}"#
        )
    }

    #[test]
    fn minimal_file_loads() {
        let m = parse_metadata(with("").as_bytes()).unwrap();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("m", "1"));
        assert!(m.features.is_none() && m.classes.is_none());
    }

    #[test]
    fn each_rule_is_refused_with_its_reason() {
        for (extra, expected) in [
            (r#","unknown":1"#, "unknown field `unknown`"),
            (r#","features":[]"#, "`features` is empty"),
            (
                r#","features":[{"name":"a"},{"name":"a"}],"outputs":{"value":"v"}"#,
                "repeated",
            ),
            (r#","classes":["x","x"]"#, "repeated"),
            (r#","outputs":{"probabilities":"p"}"#, "needs `classes`"),
            (r#","outputs":{"value":"v","label":"l"}"#, "regressor"),
            (r#","features":[{"name":"a"}]"#, "needs `outputs.label`"),
        ] {
            let e = parse_metadata(with(extra).as_bytes()).unwrap_err();
            assert!(
                matches!(&e, ModelError::Corrupt(m) if m.contains(expected)),
                "{extra}: {e}"
            );
        }
        let bad_digest = with("").replace(DIGEST, "abc");
        assert!(parse_metadata(bad_digest.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("64 hex digits"));
        let other_format = with("").replace(FORMAT, "other/2");
        assert!(matches!(
            parse_metadata(other_format.as_bytes()),
            Err(ModelError::Unsupported(_))
        ));
        assert!(matches!(
            parse_metadata(b"{\"format\":"),
            Err(ModelError::Corrupt(_))
        ));
    }
}
