//! The HTTP contract of the model server as one pure function, [`respond`]: a [`Request`] and
//! the (possibly failed) model in, a [`Reply`] out. Paths under `/v2/` are the Open Inference
//! Protocol, `/v1/models/…` KServe V1, and any other path the named-feature route, which
//! answers exactly as the iris function's `/api/v01/classify` does.

use fn_reply::Reply;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde::Serialize as DeriveSerialize;

use crate::features::{parse_instances, parse_query, shown, InputError};
use crate::model::{Label, Model, ModelError, RowAnswer, Table};
use crate::v2::{self, InferError};

/// Largest request body read, in bytes (larger → 413).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The methods the named-feature route serves, as sent in `Allow`.
pub const ALLOW: &str = "GET, POST";

/// What the component hands over of one request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// The endpoints, from the path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Endpoint<'a> {
    ServerMetadata,
    Live,
    Ready,
    V2Model {
        name: &'a str,
        version: Option<&'a str>,
        action: V2Action,
    },
    V1Model {
        name: &'a str,
    },
    V1Predict {
        name: &'a str,
    },
    Features,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum V2Action {
    Metadata,
    Ready,
    Infer,
}

fn endpoint(path: &str) -> Endpoint<'_> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segments.as_slice() {
        ["v2"] => Endpoint::ServerMetadata,
        ["v2", "health", "live"] => Endpoint::Live,
        ["v2", "health", "ready"] => Endpoint::Ready,
        ["v2", "models", name, rest @ ..] => {
            let (version, rest) = match rest {
                ["versions", v, rest @ ..] => (Some(*v), rest),
                _ => (None, rest),
            };
            let action = match rest {
                [] => V2Action::Metadata,
                ["ready"] => V2Action::Ready,
                ["infer"] => V2Action::Infer,
                _ => return Endpoint::NotFound,
            };
            Endpoint::V2Model {
                name,
                version,
                action,
            }
        }
        ["v1", "models", model] => match model.strip_suffix(":predict") {
            Some(name) => Endpoint::V1Predict { name },
            None => Endpoint::V1Model { name: model },
        },
        ["v2", ..] | ["v1", ..] => Endpoint::NotFound,
        _ => Endpoint::Features,
    }
}

fn method_not_allowed(method: &str, allow: &str) -> Reply {
    // The named-feature route words it as the iris function does.
    let hint = if allow == ALLOW {
        "GET with a query or POST with JSON".to_string()
    } else {
        allow.to_string()
    };
    Reply::json_error(
        405,
        &format!("method {} is not allowed; use {hint}", shown(method)),
    )
    .with_header("allow", allow)
}

fn unavailable(e: &ModelError) -> Reply {
    Reply::json_error(503, &format!("no model available: {e}"))
}

/// Whether a `Content-Type` value names `application/json` (parameters such as `charset`
/// allowed, case-insensitive).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// The checks every POST passes before its body is read: JSON, and not too large.
fn check_post(req: &Request) -> Result<(), Reply> {
    if !is_json(req.content_type) {
        let got = req.content_type.map_or("none".to_string(), shown);
        return Err(Reply::json_error(
            415,
            &format!("Content-Type must be application/json for POST, got {got}"),
        ));
    }
    if req.body.len() > MAX_BODY_BYTES {
        return Err(Reply::json_error(
            413,
            &format!(
                "request body has {} bytes; at most {MAX_BODY_BYTES} are allowed",
                req.body.len()
            ),
        ));
    }
    Ok(())
}

/// A model named in the path must be the one served (and the version, if named).
fn check_name(model: &Model, name: &str, version: Option<&str>) -> Result<(), Reply> {
    if name != model.name {
        return Err(Reply::json_error(
            404,
            &format!(
                "no model {}; this endpoint serves `{}`",
                shown(name),
                model.name
            ),
        ));
    }
    match version {
        Some(v) if v != model.version => Err(Reply::json_error(
            404,
            &format!(
                "model `{}` has no version {}; it serves version `{}`",
                model.name,
                shown(v),
                model.version
            ),
        )),
        _ => Ok(()),
    }
}

/// Answers one request. Checks run in this order: path, method, model, model name, content
/// type, body size, input.
pub fn respond(req: &Request, model: Result<&Model, &ModelError>) -> Reply {
    let endpoint = endpoint(req.path);
    let allow = match endpoint {
        Endpoint::NotFound => {
            return Reply::json_error(404, &format!("no endpoint {}", shown(req.path)))
        }
        Endpoint::Features => ALLOW,
        Endpoint::V2Model {
            action: V2Action::Infer,
            ..
        }
        | Endpoint::V1Predict { .. } => "POST",
        _ => "GET",
    };
    if !allow.split(", ").any(|m| m == req.method) {
        return method_not_allowed(req.method, allow);
    }
    if endpoint == Endpoint::ServerMetadata {
        return Reply::json(200, &ServerMetadata::default());
    }
    if endpoint == Endpoint::Live {
        return Reply::json(200, &Live { live: true });
    }
    let model = match model {
        Ok(m) => m,
        Err(e) => return unavailable(e),
    };
    let result = match endpoint {
        Endpoint::Ready => Ok(Reply::json(
            200,
            &Ready {
                ready: true,
                name: None,
            },
        )),
        Endpoint::V2Model {
            name,
            version,
            action,
        } => check_name(model, name, version).and_then(|()| match action {
            V2Action::Metadata => Ok(Reply::json(200, &v2::metadata(model))),
            V2Action::Ready => Ok(Reply::json(
                200,
                &Ready {
                    ready: true,
                    name: Some(&model.name),
                },
            )),
            V2Action::Infer => {
                check_post(req)?;
                v2::infer(model, req.body)
                    .map(|r| Reply::json(200, &r))
                    .map_err(|e| match e {
                        InferError::Invalid(m) => Reply::json_error(400, &m),
                        InferError::TooMany(m) => Reply::json_error(413, &m),
                        InferError::Failed(m) => {
                            Reply::json_error(500, &format!("the model failed: {m}"))
                        }
                    })
            }
        }),
        Endpoint::V1Model { name } => check_name(model, name, None).map(|()| {
            Reply::json(
                200,
                &Ready {
                    ready: true,
                    name: Some(&model.name),
                },
            )
        }),
        Endpoint::V1Predict { name } => check_name(model, name, None)
            .and_then(|()| check_post(req))
            .and_then(|()| v1_predict(model, req.body)),
        Endpoint::Features => named_features(model, req),
        Endpoint::ServerMetadata | Endpoint::Live | Endpoint::NotFound => {
            unreachable!("answered above")
        }
    };
    result.unwrap_or_else(|reply| reply)
}

#[derive(DeriveSerialize)]
struct ServerMetadata {
    name: &'static str,
    version: &'static str,
    extensions: [&'static str; 0],
}

impl Default for ServerMetadata {
    fn default() -> Self {
        ServerMetadata {
            name: "fnhost-onnx",
            version: env!("CARGO_PKG_VERSION"),
            extensions: [],
        }
    }
}

#[derive(DeriveSerialize)]
struct Live {
    live: bool,
}

#[derive(DeriveSerialize)]
struct Ready<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    ready: bool,
}

fn input_error(e: InputError) -> Reply {
    match e {
        InputError::Invalid(_) => Reply::json_error(400, &e.to_string()),
        InputError::TooMany(_) => Reply::json_error(413, &e.to_string()),
    }
}

fn table_of(model: &Model) -> Result<&Table, Reply> {
    model.table.as_ref().ok_or_else(|| {
        Reply::json_error(
            400,
            &format!(
                "model `{}` does not take rows of numbers (one [rows, columns] input); \
                 use POST /v2/models/{}/infer",
                model.name, model.name
            ),
        )
    })
}

fn predict(model: &Model, table: &Table, rows: &[Vec<f64>]) -> Result<Vec<RowAnswer>, Reply> {
    model
        .predict_rows(table, rows)
        .map_err(|m| Reply::json_error(500, &format!("the model failed: {m}")))
}

/// `POST /v1/models/{name}:predict`: `{"predictions": [label or value, …]}`.
fn v1_predict(model: &Model, body: &[u8]) -> Result<Reply, Reply> {
    let table = table_of(model)?;
    let rows = parse_instances(&table.features, table.named, body).map_err(input_error)?;
    let answers = predict(model, table, &rows)?;
    #[derive(DeriveSerialize)]
    struct Predictions<'a> {
        predictions: Vec<PredictionValue<'a>>,
    }
    Ok(Reply::json(
        200,
        &Predictions {
            predictions: answers.iter().map(PredictionValue).collect(),
        },
    ))
}

/// A row's prediction as one JSON value: the class name (or label), the value, or the raw row.
struct PredictionValue<'a>(&'a RowAnswer);

impl Serialize for PredictionValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            RowAnswer::Class { label, .. } => LabelValue(label).serialize(s),
            RowAnswer::Value(v) => s.serialize_f32(*v),
            RowAnswer::Raw(values) if values.len() == 1 => values[0].serialize(s),
            RowAnswer::Raw(values) => values.serialize(s),
        }
    }
}

struct LabelValue<'a>(&'a Label);

impl Serialize for LabelValue<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Label::Name(n) | Label::Text(n) => s.serialize_str(n),
            Label::Index(i) => s.serialize_i64(*i),
        }
    }
}

/// `{"<label_field>": …, "probabilities": {class: p, …}}`, plus `"model"` when `model` is set.
struct RowBody<'a> {
    table: &'a Table,
    answer: &'a RowAnswer,
    model: Option<&'a str>,
}

impl Serialize for RowBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry(&self.table.label_field, &PredictionValue(self.answer))?;
        if let (
            RowAnswer::Class {
                probabilities: Some(p),
                ..
            },
            Some(classes),
        ) = (self.answer, &self.table.classes)
        {
            map.serialize_entry("probabilities", &Probabilities(classes, p))?;
        }
        if let Some(m) = self.model {
            map.serialize_entry("model", m)?;
        }
        map.end()
    }
}

struct Probabilities<'a>(&'a [String], &'a [f32]);

impl Serialize for Probabilities<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (c, p) in self.0.iter().zip(self.1) {
            map.serialize_entry(c, p)?;
        }
        map.end()
    }
}

/// `{"predictions": [row, …], "model": "name@version"}`.
struct BatchBody<'a> {
    table: &'a Table,
    answers: &'a [RowAnswer],
    model: &'a str,
}

impl Serialize for BatchBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Rows<'b>(&'b Table, &'b [RowAnswer]);
        impl Serialize for Rows<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.1.iter().map(|answer| RowBody {
                    table: self.0,
                    answer,
                    model: None,
                }))
            }
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("predictions", &Rows(self.table, self.answers))?;
        map.serialize_entry("model", self.model)?;
        map.end()
    }
}

/// The named-feature route: `GET ?name=value&…` → one row; `POST {"instances": […]}` → rows.
fn named_features(model: &Model, req: &Request) -> Result<Reply, Reply> {
    let table = match &model.table {
        Some(t) if t.named => t,
        _ => {
            return Err(Reply::json_error(
                404,
                &format!(
                "model `{}` has no named features (model.json `features`); use /v2/models/{}/infer",
                model.name, model.name
            ),
            ))
        }
    };
    let id = format!("{}@{}", model.name, model.version);
    if req.method == "GET" {
        let row = parse_query(&table.features, req.query).map_err(input_error)?;
        let answers = predict(model, table, &[row])?;
        Ok(Reply::json(
            200,
            &RowBody {
                table,
                answer: &answers[0],
                model: Some(&id),
            },
        ))
    } else {
        check_post(req)?;
        let rows = parse_instances(&table.features, true, req.body).map_err(input_error)?;
        let answers = predict(model, table, &rows)?;
        Ok(Reply::json(
            200,
            &BatchBody {
                table,
                answers: &answers,
                model: &id,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_to_endpoints() {
        for (path, want) in [
            ("/v2", Endpoint::ServerMetadata),
            ("/v2/health/ready", Endpoint::Ready),
            ("/v2/health/live", Endpoint::Live),
            (
                "/v2/models/m",
                Endpoint::V2Model {
                    name: "m",
                    version: None,
                    action: V2Action::Metadata,
                },
            ),
            (
                "/v2/models/m/versions/3/infer",
                Endpoint::V2Model {
                    name: "m",
                    version: Some("3"),
                    action: V2Action::Infer,
                },
            ),
            (
                "/v2/models/m/ready",
                Endpoint::V2Model {
                    name: "m",
                    version: None,
                    action: V2Action::Ready,
                },
            ),
            ("/v2/models/m/explain", Endpoint::NotFound),
            ("/v2/repository/index", Endpoint::NotFound),
            ("/v1/models/m:predict", Endpoint::V1Predict { name: "m" }),
            ("/v1/models/m", Endpoint::V1Model { name: "m" }),
            ("/v1/other", Endpoint::NotFound),
            ("/api/v01/classify", Endpoint::Features),
            ("/", Endpoint::Features),
        ] {
            assert_eq!(endpoint(path), want, "{path}");
        }
    }
}
