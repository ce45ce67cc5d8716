//! The Open Inference Protocol (KServe V2) over REST: model metadata, and inference requests
//! (`inputs` tensors with `name`, `shape`, `datatype`, `data`) read into typed structs,
//! checked against the graph's declared inputs, run, and answered as `outputs` tensors.

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::features::{check_value, MAX_BATCH};
use crate::model::{Model, TensorSpec};
use crate::tensor::{tensor_from_data, Datatype, FlatData, OutputData};

/// `GET /v2/models/{name}`.
#[derive(Debug, Serialize)]
pub struct ModelMetadata<'a> {
    pub name: &'a str,
    pub versions: [&'a str; 1],
    pub platform: &'static str,
    pub inputs: Vec<TensorMetadata<'a>>,
    pub outputs: Vec<TensorMetadata<'a>>,
}

#[derive(Debug, Serialize)]
pub struct TensorMetadata<'a> {
    pub name: &'a str,
    pub datatype: Datatype,
    /// `-1` for a dimension of any size.
    pub shape: Vec<i64>,
}

fn tensor_metadata(spec: &TensorSpec) -> TensorMetadata<'_> {
    TensorMetadata {
        name: &spec.name,
        datatype: spec.datatype,
        shape: spec
            .shape
            .iter()
            .map(|d| d.map_or(-1, |n| n as i64))
            .collect(),
    }
}

pub fn metadata(model: &Model) -> ModelMetadata<'_> {
    ModelMetadata {
        name: &model.name,
        versions: [&model.version],
        platform: "onnx",
        inputs: model.inputs.iter().map(tensor_metadata).collect(),
        outputs: model.outputs.iter().map(tensor_metadata).collect(),
    }
}

/// An inference request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InferRequest {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub parameters: Option<IgnoredAny>,
    pub inputs: Vec<InputTensor>,
    #[serde(default)]
    pub outputs: Option<Vec<RequestedOutput>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub datatype: String,
    #[serde(default)]
    pub parameters: Option<IgnoredAny>,
    pub data: FlatData,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedOutput {
    pub name: String,
    #[serde(default)]
    pub parameters: Option<IgnoredAny>,
}

/// An inference response body.
#[derive(Debug, Serialize)]
pub struct InferResponse<'a> {
    pub model_name: &'a str,
    pub model_version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub outputs: Vec<OutputTensor<'a>>,
}

#[derive(Debug, Serialize)]
pub struct OutputTensor<'a> {
    pub name: &'a str,
    pub datatype: Datatype,
    pub shape: Vec<usize>,
    pub data: OutputData,
}

/// Why an inference request was not answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InferError {
    /// 400: the message names the field and the rule.
    Invalid(String),
    /// 413: a batch over [`MAX_BATCH`] rows.
    TooMany(String),
    /// 500: the model failed on valid input.
    Failed(String),
}

fn invalid(m: String) -> InferError {
    InferError::Invalid(m)
}

/// Checks one input tensor against its declared spec and builds it.
fn input_tensor(
    model: &Model,
    i: usize,
    input: &InputTensor,
    spec: &TensorSpec,
) -> Result<Tensor, InferError> {
    let field = format!("inputs[{i}]");
    if input.datatype != spec.datatype.name() {
        return Err(invalid(format!(
            "`{field}.datatype` is {}; input `{}` is {}",
            crate::features::shown(&input.datatype),
            spec.name,
            spec.datatype
        )));
    }
    let declared = &spec.shape;
    let fits = input.shape.len() == declared.len()
        && input
            .shape
            .iter()
            .zip(declared)
            .all(|(got, want)| want.is_none_or(|w| w == *got));
    if !fits {
        let want: Vec<String> = declared
            .iter()
            .map(|d| d.map_or("-1".to_string(), |n| n.to_string()))
            .collect();
        return Err(invalid(format!(
            "`{field}.shape` is {:?}; input `{}` has shape [{}] (-1: any size)",
            input.shape,
            spec.name,
            want.join(", ")
        )));
    }
    if let Some(&rows) = input.shape.first() {
        if declared.first() == Some(&None) {
            if rows == 0 {
                return Err(invalid(format!(
                    "`{field}.shape` has 0 rows; send at least one"
                )));
            }
            if rows > MAX_BATCH {
                return Err(InferError::TooMany(format!(
                    "`{field}` has {rows} rows; at most {MAX_BATCH} are allowed per request"
                )));
            }
        }
    }
    let tensor =
        tensor_from_data(&field, spec.datatype, &input.shape, &input.data.0).map_err(invalid)?;
    check_feature_bounds(model, &field, &input.name, &tensor)?;
    Ok(tensor)
}

/// The metadata's per-feature bounds apply to the table input whatever the protocol.
fn check_feature_bounds(
    model: &Model,
    field: &str,
    name: &str,
    tensor: &Tensor,
) -> Result<(), InferError> {
    let Some(table) = &model.table else {
        return Ok(());
    };
    if model.inputs[table.input].name != name {
        return Ok(());
    }
    let values = tensor
        .cast_to::<f64>()
        .map_err(|e| InferError::Failed(format!("{e:#}")))?;
    let values = values
        .try_as_plain_ram()
        .and_then(|p| p.as_slice::<f64>().map(<[f64]>::to_vec))
        .map_err(|e| InferError::Failed(format!("{e:#}")))?;
    let width = table.features.len();
    for (k, v) in values.iter().enumerate() {
        let feature = &table.features[k % width];
        let at = if table.named {
            format!("{field}.data[{k}] ({})", feature.name)
        } else {
            format!("{field}.data[{k}]")
        };
        check_value(feature, &at, *v).map_err(|e| invalid(e.to_string()))?;
    }
    Ok(())
}

/// Answers `POST /v2/models/{name}/infer` for a parsed body.
pub fn infer<'m>(model: &'m Model, body: &[u8]) -> Result<InferResponse<'m>, InferError> {
    let request: InferRequest = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "request body is not a valid inference request: {e}"
        ))
    })?;
    let mut tensors: Vec<Option<Tensor>> = vec![None; model.inputs.len()];
    for (i, input) in request.inputs.iter().enumerate() {
        let k = model
            .inputs
            .iter()
            .position(|s| s.name == input.name)
            .ok_or_else(|| {
                invalid(format!(
                    "`inputs[{i}].name` is {}; the model's inputs are {}",
                    crate::features::shown(&input.name),
                    crate::model::names(&model.inputs)
                ))
            })?;
        if tensors[k].is_some() {
            return Err(invalid(format!(
                "`inputs[{i}]`: input `{}` is given more than once",
                input.name
            )));
        }
        tensors[k] = Some(input_tensor(model, i, input, &model.inputs[k])?);
    }
    let mut inputs = TVec::new();
    for (spec, t) in model.inputs.iter().zip(tensors) {
        let t =
            t.ok_or_else(|| invalid(format!("`inputs` has no tensor for input `{}`", spec.name)))?;
        inputs.push(t.into_tvalue());
    }
    let wanted: Option<Vec<usize>> = request
        .outputs
        .as_ref()
        .map(|outs| {
            outs.iter()
                .enumerate()
                .map(|(i, o)| {
                    model
                        .outputs
                        .iter()
                        .position(|s| s.name == o.name)
                        .ok_or_else(|| {
                            invalid(format!(
                                "`outputs[{i}].name` is {}; the model's outputs are {}",
                                crate::features::shown(&o.name),
                                crate::model::names(&model.outputs)
                            ))
                        })
                })
                .collect()
        })
        .transpose()?;
    let results = model.run(inputs).map_err(InferError::Failed)?;
    let chosen: Vec<usize> = wanted.unwrap_or_else(|| (0..model.outputs.len()).collect());
    let outputs = chosen
        .into_iter()
        .map(|k| {
            let t = &results[k];
            Ok(OutputTensor {
                name: &model.outputs[k].name,
                datatype: model.outputs[k].datatype,
                shape: t.shape().to_vec(),
                data: OutputData::of(t).map_err(InferError::Failed)?,
            })
        })
        .collect::<Result<Vec<_>, InferError>>()?;
    Ok(InferResponse {
        model_name: &model.name,
        model_version: &model.version,
        id: request.id,
        outputs,
    })
}
