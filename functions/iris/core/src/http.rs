//! The HTTP contract of `/api/v01/classify` as one pure function, [`respond`]:
//! method, query, content type, body and the (possibly failed) model in, a
//! [`Reply`] (status, headers, JSON body) out. The wasm glue and any native
//! server only move bytes in and out of it.

pub use fn_reply::Reply;
use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::input::{parse_instances, parse_query, InputError};
use crate::model::{Features, Model, ModelError};

/// Largest request body read for a batch, in bytes (larger → 413).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The methods the route serves, as sent in `Allow`.
pub const ALLOW: &str = "GET, POST";

/// `{"species": …, "probabilities": {class: p, …}}`; probabilities only when
/// the model has them.
struct PredictionBody<'a> {
    model: &'a Model,
    x: &'a Features,
    /// Add `"model": "name@version"` (single prediction replies).
    with_model: bool,
}

impl Serialize for PredictionBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let prediction = self.model.predict(self.x);
        let classes = self.model.classes();
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("species", &classes[prediction.class])?;
        if let Some(probabilities) = &prediction.probabilities {
            map.serialize_entry(
                "probabilities",
                &Probabilities {
                    classes,
                    probabilities,
                },
            )?;
        }
        if self.with_model {
            map.serialize_entry("model", &self.model.id())?;
        }
        map.end()
    }
}

struct Probabilities<'a> {
    classes: &'a [String],
    probabilities: &'a [f64],
}

impl Serialize for Probabilities<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.classes.len()))?;
        for (c, p) in self.classes.iter().zip(self.probabilities) {
            map.serialize_entry(c, p)?;
        }
        map.end()
    }
}

struct BatchBody<'a> {
    model: &'a Model,
    instances: &'a [Features],
}

impl Serialize for BatchBody<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Predictions<'b>(&'b Model, &'b [Features]);
        impl Serialize for Predictions<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_seq(self.1.iter().map(|x| PredictionBody {
                    model: self.0,
                    x,
                    with_model: false,
                }))
            }
        }
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("predictions", &Predictions(self.model, self.instances))?;
        map.serialize_entry("model", &self.model.id())?;
        map.end()
    }
}

fn input_error(e: InputError) -> Reply {
    match e {
        InputError::Invalid(_) => Reply::json_error(400, &e.to_string()),
        InputError::TooMany(_) => Reply::json_error(413, &e.to_string()),
    }
}

/// Whether a `Content-Type` value names `application/json` (parameters such
/// as `charset` allowed, case-insensitive).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Answers one request to `/api/v01/classify`.
///
/// * `GET ?sl=&sw=&pl=&pw=` → 200 `{"species", "probabilities"?, "model"}`.
/// * `POST` `application/json` `{"instances": [...]}` → 200
///   `{"predictions": [{"species", "probabilities"?}, …], "model"}`.
/// * Other methods → 405 with `Allow: GET, POST`; no usable model → 503;
///   bad input → 400; POST without `application/json` → 415; more than
///   [`crate::MAX_BATCH`] instances or [`MAX_BODY_BYTES`] bytes → 413.
///
/// Checked in that order: method, model, content type, size, input. All
/// bodies are JSON; errors are `{"error": "…"}`. The query string of a POST
/// and the body of a GET are ignored.
pub fn respond(
    method: &str,
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    model: Result<&Model, ModelError>,
) -> Reply {
    if method != "GET" && method != "POST" {
        return Reply::json_error(
            405,
            &format!(
                "method {} is not allowed; use GET with a query or POST with JSON",
                crate::input::shown(method)
            ),
        )
        .with_header("allow", ALLOW);
    }
    let model = match model {
        Ok(m) => m,
        Err(e) => return Reply::json_error(503, &format!("no model available: {e}")),
    };
    if method == "GET" {
        match parse_query(query) {
            Ok(x) => Reply::json(
                200,
                &PredictionBody {
                    model,
                    x: &x,
                    with_model: true,
                },
            ),
            Err(e) => input_error(e),
        }
    } else {
        if !is_json(content_type) {
            let got = content_type.map_or("none".to_string(), crate::input::shown);
            return Reply::json_error(
                415,
                &format!("Content-Type must be application/json for POST, got {got}"),
            );
        }
        if body.len() > MAX_BODY_BYTES {
            return Reply::json_error(
                413,
                &format!(
                    "request body has {} bytes; at most {MAX_BODY_BYTES} are allowed",
                    body.len()
                ),
            );
        }
        match parse_instances(body) {
            Ok(instances) => Reply::json(
                200,
                &BatchBody {
                    model,
                    instances: &instances,
                },
            ),
            Err(e) => input_error(e),
        }
    }
}
