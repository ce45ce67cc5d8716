//! Tensors at the protocol boundary: the Open Inference Protocol's datatypes ([`Datatype`]),
//! JSON tensor data read straight into a flat list of [`Scalar`]s (nested or flat, row-major),
//! checked against a datatype and shape into a tract `Tensor`, and tract tensors written back
//! as JSON ([`OutputData`]).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

/// The datatypes this server reads and writes (named as in the Open Inference Protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datatype {
    Bool,
    Int32,
    Int64,
    Fp32,
    Fp64,
    /// Strings (e.g. a classifier trained on string labels); outputs only.
    Bytes,
}

impl Datatype {
    pub fn name(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }

    /// From an ONNX `TensorProto.DataType`.
    pub fn from_onnx(elem_type: i32) -> Option<Datatype> {
        Some(match elem_type {
            1 => Datatype::Fp32,
            6 => Datatype::Int32,
            7 => Datatype::Int64,
            8 => Datatype::Bytes,
            9 => Datatype::Bool,
            11 => Datatype::Fp64,
            _ => return None,
        })
    }

    pub fn datum_type(self) -> DatumType {
        match self {
            Datatype::Bool => DatumType::Bool,
            Datatype::Int32 => DatumType::I32,
            Datatype::Int64 => DatumType::I64,
            Datatype::Fp32 => DatumType::F32,
            Datatype::Fp64 => DatumType::F64,
            Datatype::Bytes => DatumType::String,
        }
    }
}

impl fmt::Display for Datatype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Datatype {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One element of tensor data as JSON gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    /// A non-negative integer above `i64::MAX`.
    BigUint(u64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn kind(&self) -> &'static str {
        match self {
            Scalar::Bool(_) => "a boolean",
            Scalar::Int(_) | Scalar::BigUint(_) => "an integer",
            Scalar::Float(_) => "a number",
            Scalar::Text(_) => "a string",
        }
    }
}

impl Serialize for Scalar {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Scalar::Bool(b) => s.serialize_bool(*b),
            Scalar::Int(i) => s.serialize_i64(*i),
            Scalar::BigUint(u) => s.serialize_u64(*u),
            Scalar::Float(f) => s.serialize_f64(*f),
            Scalar::Text(t) => s.serialize_str(t),
        }
    }
}

/// Tensor `data` from JSON: nested arrays flattened in row-major order as they are read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FlatData(pub Vec<Scalar>);

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FlatData, D::Error> {
        let mut out = Vec::new();
        Flatten(&mut out).deserialize(d)?;
        Ok(FlatData(out))
    }
}

struct Flatten<'a>(&'a mut Vec<Scalar>);

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of numbers, booleans or strings (possibly nested)")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.0.push(Scalar::Bool(v));
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.0.push(Scalar::Int(v));
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.0.push(match i64::try_from(v) {
            Ok(i) => Scalar::Int(i),
            Err(_) => Scalar::BigUint(v),
        });
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.0.push(Scalar::Float(v));
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.0.push(Scalar::Text(v.to_owned()));
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// Builds a tensor of `datatype` and `shape` from data, naming `field` and the element index
/// in every error (non-finite numbers, wrong kinds, integers out of range, wrong count).
pub fn tensor_from_data(
    field: &str,
    datatype: Datatype,
    shape: &[usize],
    data: &[Scalar],
) -> Result<Tensor, String> {
    let count: usize = shape.iter().product();
    if data.len() != count {
        return Err(format!(
            "`{field}.data` has {} elements; shape {shape:?} needs {count}",
            data.len()
        ));
    }
    let wrong = |i: usize, s: &Scalar| {
        format!(
            "`{field}.data[{i}]` must be {} for datatype {datatype}, got {}",
            match datatype {
                Datatype::Bool => "a boolean",
                Datatype::Int32 | Datatype::Int64 => "an integer",
                _ => "a number",
            },
            s.kind()
        )
    };
    fn build<T: Datum + Copy>(shape: &[usize], v: Vec<T>) -> Result<Tensor, String> {
        Tensor::from_shape(shape, &v).map_err(|e| format!("{e:#}"))
    }
    match datatype {
        Datatype::Fp32 | Datatype::Fp64 => {
            let mut v = Vec::with_capacity(count);
            for (i, s) in data.iter().enumerate() {
                let x = match s {
                    Scalar::Int(n) => *n as f64,
                    Scalar::BigUint(n) => *n as f64,
                    Scalar::Float(f) => *f,
                    other => return Err(wrong(i, other)),
                };
                if !x.is_finite() || (datatype == Datatype::Fp32 && !(x as f32).is_finite()) {
                    return Err(format!(
                        "`{field}.data[{i}]` must be finite in {datatype}, got {x}"
                    ));
                }
                v.push(x);
            }
            if datatype == Datatype::Fp32 {
                build(shape, v.into_iter().map(|x| x as f32).collect())
            } else {
                build(shape, v)
            }
        }
        Datatype::Int32 | Datatype::Int64 => {
            let mut v = Vec::with_capacity(count);
            for (i, s) in data.iter().enumerate() {
                let n = match s {
                    Scalar::Int(n) => *n,
                    other => return Err(wrong(i, other)),
                };
                if datatype == Datatype::Int32 && i32::try_from(n).is_err() {
                    return Err(format!(
                        "`{field}.data[{i}]` is out of range for INT32: {n}"
                    ));
                }
                v.push(n);
            }
            if datatype == Datatype::Int32 {
                build(shape, v.into_iter().map(|n| n as i32).collect())
            } else {
                build(shape, v)
            }
        }
        Datatype::Bool => {
            let v = data
                .iter()
                .enumerate()
                .map(|(i, s)| match s {
                    Scalar::Bool(b) => Ok(*b),
                    other => Err(wrong(i, other)),
                })
                .collect::<Result<Vec<bool>, String>>()?;
            build(shape, v)
        }
        Datatype::Bytes => Err(format!("`{field}`: BYTES inputs are not supported")),
    }
}

/// A tensor's elements and its shape, read once so rows can be taken out of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows {
    data: OutputData,
    rows: usize,
    width: usize,
}

impl Rows {
    /// Rows along axis 0; a rank-0 tensor is one row of one element.
    pub fn of(t: &Tensor) -> Result<Rows, String> {
        let rows = t.shape().first().copied().unwrap_or(1);
        let width = t.len().checked_div(rows).unwrap_or(0);
        Ok(Rows {
            data: OutputData::of(t)?,
            rows,
            width,
        })
    }

    /// Row `r` as scalars.
    pub fn row(&self, r: usize) -> Result<Vec<Scalar>, String> {
        if r >= self.rows {
            return Err(format!("output has {} rows, wanted row {r}", self.rows));
        }
        let range = r * self.width..(r + 1) * self.width;
        Ok(match &self.data {
            OutputData::Bool(v) => v[range].iter().map(|&b| Scalar::Bool(b)).collect(),
            OutputData::Int32(v) => v[range].iter().map(|&n| Scalar::Int(n.into())).collect(),
            OutputData::Int64(v) => v[range].iter().map(|&n| Scalar::Int(n)).collect(),
            OutputData::Fp32(v) => v[range].iter().map(|&f| Scalar::Float(f.into())).collect(),
            OutputData::Fp64(v) => v[range].iter().map(|&f| Scalar::Float(f)).collect(),
            OutputData::Bytes(v) => v[range].iter().map(|s| Scalar::Text(s.clone())).collect(),
        })
    }
}

/// A tensor's elements, flat, as the JSON array of a V2 output.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OutputData {
    Bool(Vec<bool>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<String>),
}

impl OutputData {
    pub fn of(t: &Tensor) -> Result<OutputData, String> {
        let plain = t.try_as_plain_ram().map_err(|e| format!("{e:#}"))?;
        let err = |e: TractError| format!("{e:#}");
        Ok(match t.datum_type() {
            DatumType::Bool => OutputData::Bool(plain.as_slice::<bool>().map_err(err)?.to_vec()),
            DatumType::I32 => OutputData::Int32(plain.as_slice::<i32>().map_err(err)?.to_vec()),
            DatumType::I64 => OutputData::Int64(plain.as_slice::<i64>().map_err(err)?.to_vec()),
            DatumType::F32 => OutputData::Fp32(plain.as_slice::<f32>().map_err(err)?.to_vec()),
            DatumType::F64 => OutputData::Fp64(plain.as_slice::<f64>().map_err(err)?.to_vec()),
            DatumType::String => {
                OutputData::Bytes(plain.as_slice::<String>().map_err(err)?.to_vec())
            }
            other => return Err(format!("output datum type {other:?} is not served")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(json: &str) -> Vec<Scalar> {
        serde_json::from_str::<FlatData>(json).unwrap().0
    }

    #[test]
    fn nested_and_flat_data_read_the_same() {
        assert_eq!(flat("[[1, 2.5], [3, 4]]"), flat("[1, 2.5, 3, 4]"));
        assert_eq!(
            flat("[true, \"x\", 18446744073709551615]"),
            vec![
                Scalar::Bool(true),
                Scalar::Text("x".into()),
                Scalar::BigUint(u64::MAX)
            ]
        );
    }

    #[test]
    fn data_is_checked_against_datatype_and_shape() {
        let t = tensor_from_data(
            "inputs[0]",
            Datatype::Fp32,
            &[2, 2],
            &flat("[[1,2],[3,4.5]]"),
        )
        .unwrap();
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.datum_type(), DatumType::F32);
        for (dt, shape, data, msg) in [
            (
                Datatype::Fp32,
                vec![2, 2],
                "[1,2,3]",
                "has 3 elements; shape [2, 2] needs 4",
            ),
            (
                Datatype::Fp32,
                vec![1],
                "[\"a\"]",
                "`inputs[0].data[0]` must be a number for datatype FP32, got a string",
            ),
            (Datatype::Fp32, vec![1], "[1e300]", "must be finite in FP32"),
            (
                Datatype::Int64,
                vec![1],
                "[1.5]",
                "must be an integer for datatype INT64, got a number",
            ),
            (
                Datatype::Int32,
                vec![1],
                "[3000000000]",
                "out of range for INT32",
            ),
            (Datatype::Bool, vec![1], "[1]", "must be a boolean"),
        ] {
            let e = tensor_from_data("inputs[0]", dt, &shape, &flat(data)).unwrap_err();
            assert!(e.contains(msg), "{data}: {e}");
        }
    }

    #[test]
    fn rows_of_outputs() {
        let labels = Rows::of(&tensor1(&[0i64, 2])).unwrap();
        assert_eq!(labels.row(1).unwrap(), vec![Scalar::Int(2)]);
        let probabilities = Rows::of(&tensor2(&[[0.5f32, 0.5], [0.25, 0.75]])).unwrap();
        assert_eq!(
            probabilities.row(1).unwrap(),
            vec![Scalar::Float(0.25), Scalar::Float(0.75)]
        );
        assert!(labels.row(2).is_err());
    }
}
