//! A loaded model: `model.onnx` parsed, type-checked and optimised by tract once, its declared
//! signature (input and output names, datatypes, shapes), and what the metadata says its
//! columns and outputs mean ([`Table`]). Running it turns tensors into tensors of the declared
//! output datatypes; [`Model::predict_rows`] turns rows of numbers into per-row predictions.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::metadata::{parse_metadata, Feature, Metadata};
use crate::tensor::Datatype;

/// Why no model can be used (every variant is a 503).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// `model.onnx` is absent or unreadable (set by whoever reads the directory).
    Missing(String),
    /// A file is not what it claims to be.
    Corrupt(String),
    /// Well-formed, but uses something this build does not run.
    Unsupported(String),
    /// `model.onnx` is not the file `model.json` describes: a replacement is under way.
    Mismatch { expected: String, found: String },
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Missing(m) => write!(f, "model missing: {m}"),
            ModelError::Corrupt(m) => write!(f, "model corrupt: {m}"),
            ModelError::Unsupported(m) => write!(f, "model unsupported: {m}"),
            ModelError::Mismatch { expected, found } => write!(
                f,
                "model.onnx has sha256 {found} but model.json describes {expected}; \
                 the two files disagree until both are replaced"
            ),
        }
    }
}

impl std::error::Error for ModelError {}

/// One declared graph input or output. `None` in `shape` is a dimension of any size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub datatype: Datatype,
    pub shape: Vec<Option<usize>>,
}

/// How a model answers a row of features, from the metadata (or, without it, its first output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `label` (and `probabilities`) outputs, indices into [`Model::outputs`].
    Classifier {
        label: usize,
        probabilities: Option<usize>,
    },
    /// A regressor's `value` output.
    Regressor { value: usize },
    /// No metadata: each row's slice of the first output, as it is.
    FirstOutput,
}

/// A model whose input is one `[rows, columns]` numeric tensor: the shape the row protocols
/// (V1 `instances`, named query parameters) need.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Index into [`Model::inputs`].
    pub input: usize,
    /// One per column; from the metadata, or named `0`, `1`, … without it.
    pub features: Vec<Feature>,
    /// Whether the metadata named the columns (the named-feature route needs that).
    pub named: bool,
    pub answer: Answer,
    pub classes: Option<Vec<String>>,
    /// Key of the prediction in named-feature replies.
    pub label_field: String,
}

/// A ready model.
#[derive(Debug)]
pub struct Model {
    pub name: String,
    pub version: String,
    /// Hex SHA-256 of `model.onnx`.
    pub sha256: String,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub table: Option<Table>,
    plan: Arc<TypedRunnableModel>,
}

/// One row's answer, as [`Table::answer`] reads the outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum RowAnswer {
    Class {
        label: Label,
        /// One per class, in `classes` order.
        probabilities: Option<Vec<f32>>,
    },
    Value(f32),
    Raw(Vec<crate::tensor::Scalar>),
}

/// A classifier's label: its class name when the metadata names classes.
#[derive(Debug, Clone, PartialEq)]
pub enum Label {
    Name(String),
    Index(i64),
    Text(String),
}

fn unsupported(m: impl Into<String>) -> ModelError {
    ModelError::Unsupported(m.into())
}

fn corrupt(m: impl Into<String>) -> ModelError {
    ModelError::Corrupt(m.into())
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The ONNX parser with the operators fnhost adds (see `trees.rs`).
pub(crate) fn parser() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    crate::trees::register(&mut onnx.op_register);
    onnx
}

fn spec_of(v: &pb::ValueInfoProto) -> Result<TensorSpec, ModelError> {
    use pb::tensor_shape_proto::dimension::Value as Dim;
    use pb::type_proto::Value;
    let Some(Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err(unsupported(format!("`{}` is not a tensor", v.name)));
    };
    let datatype = Datatype::from_onnx(t.elem_type).ok_or_else(|| {
        unsupported(format!(
            "`{}` has ONNX element type {}; supported: BOOL, INT32, INT64, FP32, FP64, BYTES",
            v.name, t.elem_type
        ))
    })?;
    let shape = t
        .shape
        .as_ref()
        .ok_or_else(|| unsupported(format!("`{}` has no declared shape", v.name)))?
        .dim
        .iter()
        .map(|d| match d.value {
            Some(Dim::DimValue(n)) if n >= 0 => Some(n as usize),
            _ => None,
        })
        .collect();
    Ok(TensorSpec {
        name: v.name.clone(),
        datatype,
        shape,
    })
}

impl Model {
    /// Loads `model.onnx` (and `model.json` when given): checks the digest first, then parses,
    /// type-checks and optimises the graph, then checks the metadata against it.
    pub fn load(onnx: &[u8], metadata: Option<&[u8]>) -> Result<Model, ModelError> {
        let sha256 = sha256_hex(onnx);
        let metadata = metadata.map(parse_metadata).transpose()?;
        if let Some(m) = &metadata {
            if !m.model_sha256.eq_ignore_ascii_case(&sha256) {
                return Err(ModelError::Mismatch {
                    expected: m.model_sha256.to_ascii_lowercase(),
                    found: sha256,
                });
            }
        }
        let onnx_parser = parser();
        let proto = onnx_parser
            .proto_model_for_read(&mut &onnx[..])
            .map_err(|e| corrupt(format!("model.onnx is not an ONNX model: {e:#}")))?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| corrupt("model.onnx has no graph"))?;
        let initializers: Vec<&str> = graph.initializer.iter().map(|i| i.name.as_str()).collect();
        let inputs = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(&i.name.as_str()))
            .map(spec_of)
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = graph
            .output
            .iter()
            .map(spec_of)
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(i) = inputs.iter().find(|i| i.datatype == Datatype::Bytes) {
            return Err(unsupported(format!(
                "input `{}` is a string tensor; inputs must be numeric or boolean",
                i.name
            )));
        }
        let plan = optimise(&onnx_parser, &proto, &inputs)
            .map_err(|e| unsupported(format!("tract cannot run this graph: {e:#}")))?;
        let (name, version) = match &metadata {
            Some(m) => (m.name.clone(), m.version.clone()),
            None if !graph.name.is_empty() => (graph.name.clone(), sha256[..12].to_string()),
            None => ("model".to_string(), sha256[..12].to_string()),
        };
        let table = table_of(&inputs, &outputs, metadata.as_ref())?;
        Ok(Model {
            name,
            version,
            sha256,
            inputs,
            outputs,
            table,
            plan,
        })
    }

    /// Runs the graph on one tensor per input (in [`Model::inputs`] order); returns one tensor
    /// per output, cast to its declared datatype.
    pub fn run(&self, inputs: TVec<TValue>) -> Result<Vec<Tensor>, String> {
        let results = self.plan.run(inputs).map_err(|e| format!("{e:#}"))?;
        results
            .into_iter()
            .zip(&self.outputs)
            .map(|(t, spec)| {
                let t = t.into_tensor();
                let want = spec.datatype.datum_type();
                if t.datum_type() == want {
                    Ok(t)
                } else {
                    t.cast_to_dt(want)
                        .map(|c| c.into_owned())
                        .map_err(|e| format!("output `{}`: {e:#}", spec.name))
                }
            })
            .collect()
    }

    /// Answers rows of features (each `table.features.len()` long, already validated).
    pub fn predict_rows(&self, table: &Table, rows: &[Vec<f64>]) -> Result<Vec<RowAnswer>, String> {
        let width = table.features.len();
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        let input = Tensor::from_shape(&[rows.len(), width], &flat)
            .and_then(|t| {
                t.cast_to_dt(self.inputs[table.input].datatype.datum_type())
                    .map(|c| c.into_owned())
            })
            .map_err(|e| format!("{e:#}"))?;
        let outputs = self
            .run(tvec!(input.into_tvalue()))?
            .iter()
            .map(crate::tensor::Rows::of)
            .collect::<Result<Vec<_>, String>>()?;
        (0..rows.len())
            .map(|r| row_answer(table, &outputs, r))
            .collect()
    }
}

/// Parses the graph with every input's declared type and shape (unknown dimensions become
/// symbols), swaps in the fast tree-ensemble evaluator, optimises, and plans it.
fn optimise(
    onnx: &tract_onnx::Onnx,
    proto: &pb::ModelProto,
    inputs: &[TensorSpec],
) -> TractResult<Arc<TypedRunnableModel>> {
    let mut model = onnx.model_for_proto_model(proto)?;
    for (i, spec) in inputs.iter().enumerate() {
        let shape: TVec<TDim> = spec
            .shape
            .iter()
            .enumerate()
            .map(|(axis, d)| match d {
                Some(n) => n.to_dim(),
                None if axis == 0 => model.symbols.sym("N").to_dim(),
                None => model.symbols.sym(&format!("{}_{axis}", spec.name)).to_dim(),
            })
            .collect();
        model.set_input_fact(
            i,
            InferenceFact::dt_shape(spec.datatype.datum_type(), shape),
        )?;
    }
    let mut typed = model.into_typed()?;
    crate::trees::use_fast_trees(&mut typed)?;
    typed.into_optimized()?.into_runnable()
}

/// The row view of a model, and the metadata's claims checked against the graph.
fn table_of(
    inputs: &[TensorSpec],
    outputs: &[TensorSpec],
    metadata: Option<&Metadata>,
) -> Result<Option<Table>, ModelError> {
    let output_index = |role: &str, name: &String| {
        outputs.iter().position(|o| &o.name == name).ok_or_else(|| {
            corrupt(format!(
                "model.json names output `{name}` as `{role}`; the graph's outputs are {}",
                names(outputs)
            ))
        })
    };
    let input = match metadata.and_then(|m| m.input.as_ref()) {
        Some(name) => Some(inputs.iter().position(|i| &i.name == name).ok_or_else(|| {
            corrupt(format!(
                "model.json names input `{name}`; the graph's inputs are {}",
                names(inputs)
            ))
        })?),
        None if inputs.len() == 1 => Some(0),
        None => None,
    };
    let Some(input) = input else {
        return Ok(None);
    };
    let spec = &inputs[input];
    let width = match spec.shape.as_slice() {
        [_, Some(w)] if inputs.len() == 1 => *w,
        _ if metadata.is_some_and(|m| m.features.is_some()) => {
            return Err(unsupported(format!(
                "model.json names features, but input `{}` is not a [rows, columns] table \
                 (shape {:?}) or the graph has other inputs",
                spec.name, spec.shape
            )))
        }
        _ => return Ok(None),
    };
    let Some(m) = metadata else {
        return Ok(Some(Table {
            input,
            features: unnamed_features(width),
            named: false,
            answer: Answer::FirstOutput,
            classes: None,
            label_field: "prediction".into(),
        }));
    };
    let (features, named) = match &m.features {
        Some(f) if f.len() != width => {
            return Err(corrupt(format!(
                "model.json names {} features; input `{}` has {width} columns",
                f.len(),
                spec.name
            )))
        }
        Some(f) => (f.clone(), true),
        None => (unnamed_features(width), false),
    };
    let answer = match (&m.outputs.label, &m.outputs.probabilities, &m.outputs.value) {
        (Some(label), probabilities, None) => Answer::Classifier {
            label: output_index("label", label)?,
            probabilities: probabilities
                .as_ref()
                .map(|p| output_index("probabilities", p))
                .transpose()?,
        },
        (None, None, Some(value)) => Answer::Regressor {
            value: output_index("value", value)?,
        },
        _ => Answer::FirstOutput,
    };
    if let (
        Answer::Classifier {
            probabilities: Some(p),
            ..
        },
        Some(classes),
    ) = (&answer, &m.classes)
    {
        if let [_, Some(n)] = outputs[*p].shape.as_slice() {
            if *n != classes.len() {
                return Err(corrupt(format!(
                    "model.json names {} classes; output `{}` has {n} columns",
                    classes.len(),
                    outputs[*p].name
                )));
            }
        }
    }
    Ok(Some(Table {
        input,
        features,
        named,
        answer,
        classes: m.classes.clone(),
        label_field: m.label_field.clone().unwrap_or_else(|| "prediction".into()),
    }))
}

/// Columns without metadata: named by position, any finite value accepted.
fn unnamed_features(width: usize) -> Vec<Feature> {
    (0..width)
        .map(|i| Feature {
            name: i.to_string(),
            unit: None,
            greater_than: None,
            at_least: None,
            less_than: None,
            at_most: None,
        })
        .collect()
}

pub(crate) fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Row `r` of every output, read as `table.answer` says.
fn row_answer(
    table: &Table,
    outputs: &[crate::tensor::Rows],
    r: usize,
) -> Result<RowAnswer, String> {
    use crate::tensor::Scalar;
    match table.answer {
        Answer::Classifier {
            label,
            probabilities,
        } => {
            let label = match outputs[label].row(r)?.as_slice() {
                [Scalar::Int(i)] => match &table.classes {
                    Some(classes) => Label::Name(
                        classes
                            .get(usize::try_from(*i).unwrap_or(usize::MAX))
                            .ok_or_else(|| {
                                format!(
                                    "the model answered label {i}; model.json names {} classes",
                                    classes.len()
                                )
                            })?
                            .clone(),
                    ),
                    None => Label::Index(*i),
                },
                [Scalar::Text(s)] => Label::Text(s.clone()),
                other => return Err(format!("the label output gave {other:?} for one row")),
            };
            let probabilities = probabilities
                .map(|p| {
                    outputs[p]
                        .row(r)?
                        .into_iter()
                        .map(|s| match s {
                            Scalar::Float(f) => Ok(f as f32),
                            other => Err(format!("a probability is {other:?}")),
                        })
                        .collect::<Result<Vec<f32>, String>>()
                })
                .transpose()?;
            Ok(RowAnswer::Class {
                label,
                probabilities,
            })
        }
        Answer::Regressor { value } => match outputs[value].row(r)?.as_slice() {
            [Scalar::Float(v)] => Ok(RowAnswer::Value(*v as f32)),
            other => Err(format!("the value output gave {other:?} for one row")),
        },
        Answer::FirstOutput => Ok(RowAnswer::Raw(outputs[0].row(r)?)),
    }
}
