//! What `fnhost new onnx-model` learns from a model file alone: the model loaded exactly as the
//! component loads it (so a file the component could not serve is refused before anything is
//! written), its inputs and outputs, which outputs are a classifier's label and probabilities
//! or a regressor's value, and the class labels where the graph carries them (the
//! `classlabels_*` attribute of scikit-learn's classifier operators). From that it writes the
//! `model.json` (`fnhost-onnx-model/1`) the component serves the file with.

use serde::Serialize;
use tract_onnx::pb;
use tract_onnx::prelude::Framework as _;

use crate::metadata::FORMAT;
use crate::model::{Model, ModelError, TensorSpec};
use crate::tensor::Datatype;

/// A model file, described from its graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub role: Role,
    /// Class names, one per probability column, when the graph lists its class labels.
    pub classes: Option<Vec<String>>,
}

/// What the outputs are, as far as the graph says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Classifier {
        label: String,
        probabilities: Option<String>,
    },
    Regressor {
        value: String,
    },
    /// Anything else: V1 answers each row's slice of the first output.
    Other,
}

/// The operators whose `classlabels_strings` / `classlabels_int64s` attribute lists the
/// classes in probability-column order.
const CLASSIFIER_OPS: &[&str] = &[
    "LinearClassifier",
    "TreeEnsembleClassifier",
    "SVMClassifier",
];

/// Loads `onnx` as the component would and describes it.
pub fn describe(onnx: &[u8]) -> Result<Description, ModelError> {
    let model = Model::load(onnx, None)?;
    let proto = crate::model::parser()
        .proto_model_for_read(&mut &onnx[..])
        .map_err(|e| ModelError::Corrupt(format!("model.onnx is not an ONNX model: {e:#}")))?;
    let role = role_of(&model.outputs);
    let classes = match &role {
        Role::Classifier {
            probabilities: Some(_),
            ..
        } => proto.graph.as_ref().and_then(class_labels),
        _ => None,
    };
    Ok(Description {
        inputs: model.inputs,
        outputs: model.outputs,
        role,
        classes,
    })
}

fn is_label(spec: &TensorSpec) -> bool {
    matches!(
        spec.datatype,
        Datatype::Int64 | Datatype::Int32 | Datatype::Bytes
    ) && matches!(spec.shape.as_slice(), [_] | [_, Some(1)])
}

fn is_table(spec: &TensorSpec) -> bool {
    matches!(spec.datatype, Datatype::Fp32 | Datatype::Fp64) && spec.shape.len() == 2
}

/// A label output (integer or string, one per row) with an optional float `[rows, classes]`
/// output is a classifier; a single float output a regressor.
fn role_of(outputs: &[TensorSpec]) -> Role {
    match outputs {
        [one] if is_label(one) => Role::Classifier {
            label: one.name.clone(),
            probabilities: None,
        },
        [one] if matches!(one.datatype, Datatype::Fp32 | Datatype::Fp64) => Role::Regressor {
            value: one.name.clone(),
        },
        [a, b] if is_label(a) && is_table(b) => Role::Classifier {
            label: a.name.clone(),
            probabilities: Some(b.name.clone()),
        },
        [a, b] if is_table(a) && is_label(b) => Role::Classifier {
            label: b.name.clone(),
            probabilities: Some(a.name.clone()),
        },
        _ => Role::Other,
    }
}

/// The class labels of the graph's classifier operator: strings as they are; integers only
/// when they are `0…n-1` (the metadata's `classes[i]` names label `i`).
fn class_labels(graph: &pb::GraphProto) -> Option<Vec<String>> {
    let node = graph
        .node
        .iter()
        .find(|n| CLASSIFIER_OPS.contains(&n.op_type.as_str()))?;
    let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
    if let Some(strings) = attribute("classlabels_strings") {
        return strings
            .strings
            .iter()
            .map(|s| String::from_utf8(s.clone()).ok())
            .collect();
    }
    // LinearClassifier and SVMClassifier call it `classlabels_ints`, TreeEnsembleClassifier
    // `classlabels_int64s`.
    let ints = &attribute("classlabels_int64s")
        .or_else(|| attribute("classlabels_ints"))?
        .ints;
    let in_order = ints.iter().enumerate().all(|(i, l)| *l == i as i64);
    in_order.then(|| ints.iter().map(|l| l.to_string()).collect())
}

/// `model.json` for a described model: every field `fnhost-onnx-model/1` needs, nothing
/// guessed (no feature names: the graph has none, so there is no named-feature route).
#[derive(Debug, Clone, Serialize)]
pub struct NewMetadata {
    pub format: &'static str,
    pub name: String,
    pub version: String,
    pub model_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    pub outputs: NewOutputs,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct NewOutputs {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probabilities: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

impl Description {
    /// The metadata that serves this model as `name` version `version`.
    pub fn metadata(&self, onnx: &[u8], name: &str, version: &str) -> NewMetadata {
        let outputs = match &self.role {
            Role::Classifier {
                label,
                probabilities,
            } => NewOutputs {
                label: Some(label.clone()),
                // The format names probability columns by `classes`: without class labels in
                // the graph, V1 answers the label alone (V2 still returns every output).
                probabilities: probabilities.clone().filter(|_| self.classes.is_some()),
                value: None,
            },
            Role::Regressor { value } => NewOutputs {
                value: Some(value.clone()),
                ..NewOutputs::default()
            },
            Role::Other => NewOutputs::default(),
        };
        NewMetadata {
            format: FORMAT,
            name: name.to_owned(),
            version: version.to_owned(),
            model_sha256: crate::model::sha256_hex(onnx),
            input: match self.inputs.as_slice() {
                [one] => Some(one.name.clone()),
                _ => None,
            },
            outputs,
            classes: self.classes.clone(),
        }
    }
}
