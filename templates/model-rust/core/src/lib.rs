//! `{{name}}-core`: the model of the `{{name}}` component and its HTTP contract as pure Rust,
//! with no wasm or server imports, so it is tested natively (`cargo test -p {{name}}-core`) and
//! the wasm glue (`functions/{{name}}/component`) only moves bytes.
//!
//! The model is a logistic regression whose parameters live in `model.json` (name, version,
//! feature names, one weight per feature, bias): `GET /{{name}}?x1=…&x2=…` answers
//! `{"score": p, "model": "name@version"}` with p = 1 / (1 + e^-(w·x + b)).

use serde::{Deserialize, Serialize};

/// `model.json`: the parameters the component reads per request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub name: String,
    pub version: String,
    /// Query parameter names, in the order of `weights`.
    pub features: Vec<String>,
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Model {
    /// Parses `model.json`; the weights must match the features one to one.
    pub fn from_json(bytes: &[u8]) -> Result<Model, String> {
        let model: Model =
            serde_json::from_slice(bytes).map_err(|e| format!("model.json is invalid: {e}"))?;
        if model.weights.len() != model.features.len() {
            return Err(format!(
                "model.json has {} weights for {} features",
                model.weights.len(),
                model.features.len()
            ));
        }
        Ok(model)
    }

    /// The probability of the positive class for one row (in `features` order).
    pub fn score(&self, row: &[f64]) -> f64 {
        let z: f64 = self.bias + self.weights.iter().zip(row).map(|(w, x)| w * x).sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    /// One row from a query string: every feature exactly once, each a finite number.
    pub fn parse_query(&self, query: &str) -> Result<Vec<f64>, String> {
        let mut row: Vec<Option<f64>> = vec![None; self.features.len()];
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let i = self
                .features
                .iter()
                .position(|f| *f == key)
                .ok_or_else(|| format!("unknown parameter `{key}`; expected {}", self.features.join(", ")))?;
            if row[i].is_some() {
                return Err(format!("parameter `{key}` is given more than once"));
            }
            let v: f64 = value
                .parse()
                .map_err(|_| format!("`{key}` must be a number, got `{value}`"))?;
            if !v.is_finite() {
                return Err(format!("`{key}` must be finite, got {value}"));
            }
            row[i] = Some(v);
        }
        row.iter()
            .zip(&self.features)
            .map(|(v, f)| v.ok_or_else(|| format!("missing parameter `{f}`")))
            .collect()
    }
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub score: f64,
    /// `name@version` of the model that answered.
    pub model: String,
}

/// An error answer: `{"error": "…"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorBody {
    pub error: String,
}

/// What the component answers, before it becomes HTTP.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// 200.
    Ok(Prediction),
    /// 400: the query breaks a rule.
    BadInput(ErrorBody),
    /// 405: only GET is served.
    MethodNotAllowed(ErrorBody),
    /// 503: the model file is missing or invalid.
    NoModel(ErrorBody),
}

/// The JSON body of an answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Body {
    Prediction(Prediction),
    Error(ErrorBody),
}

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::Ok(_) => 200,
            Answer::BadInput(_) => 400,
            Answer::MethodNotAllowed(_) => 405,
            Answer::NoModel(_) => 503,
        }
    }

    /// The status and the JSON body.
    pub fn into_parts(self) -> (u16, Body) {
        let status = self.status();
        let body = match self {
            Answer::Ok(p) => Body::Prediction(p),
            Answer::BadInput(e) | Answer::MethodNotAllowed(e) | Answer::NoModel(e) => Body::Error(e),
        };
        (status, body)
    }
}

fn error(message: String) -> ErrorBody {
    ErrorBody { error: message }
}

/// Answers one request: the method, the query string, and `model.json`'s bytes (or why they
/// could not be read).
pub fn respond(method: &str, query: Option<&str>, model_json: Result<Vec<u8>, String>) -> Answer {
    if method != "GET" {
        return Answer::MethodNotAllowed(error(format!("method {method} is not allowed; use GET")));
    }
    let model = match model_json.and_then(|bytes| Model::from_json(&bytes)) {
        Ok(m) => m,
        Err(e) => return Answer::NoModel(error(format!("no model available: {e}"))),
    };
    match model.parse_query(query.unwrap_or("")) {
        Ok(row) => Answer::Ok(Prediction {
            score: model.score(&row),
            model: format!("{}@{}", model.name, model.version),
        }),
        Err(e) => Answer::BadInput(error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = r#"{"name":"m","version":"1","features":["x1","x2"],"weights":[1.5,-0.5],"bias":-1.0}"#;

    fn answer(query: &str) -> Answer {
        respond("GET", Some(query), Ok(MODEL.as_bytes().to_vec()))
    }

    #[test]
    fn scores_a_row_by_name() {
        // z = -1 + 1.5·2 - 0.5·2 = 1
        let Answer::Ok(p) = answer("x2=2&x1=2") else { panic!() };
        assert!((p.score - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12);
        assert_eq!(p.model, "m@1");
    }

    #[test]
    fn bad_input_and_missing_model_are_named() {
        assert_eq!(answer("x1=1").status(), 400);
        assert_eq!(answer("x1=1&x2=a").status(), 400);
        assert_eq!(answer("x1=1&x2=2&x3=3").status(), 400);
        assert_eq!(respond("GET", Some("x1=1&x2=2"), Err("gone".into())).status(), 503);
        assert_eq!(respond("POST", None, Ok(MODEL.into())).status(), 405);
    }
}
