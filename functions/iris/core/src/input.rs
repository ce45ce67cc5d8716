//! Request input: decoding the `sl`, `sw`, `pl`, `pw` query parameters and the
//! `{"instances": [...]}` JSON body into [`Features`], and the validation rules
//! every measurement must pass. Errors are plain sentences naming the field and
//! the rule; the HTTP layer turns them into 400/413 replies.

use serde_json::Value;

use crate::model::{Features, FEATURES};

/// Largest number of instances one batch request may carry.
pub const MAX_BATCH: usize = 10_000;

/// Smallest value accepted is anything above this, in cm.
pub const MIN_CM_EXCLUSIVE: f64 = 0.0;
/// Largest value accepted, in cm.
pub const MAX_CM: f64 = 100.0;

/// Why a request's input was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// 400: the input breaks a rule; the message names the field and the rule.
    Invalid(String),
    /// 413: more than [`MAX_BATCH`] instances.
    TooMany(usize),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::Invalid(m) => f.write_str(m),
            InputError::TooMany(n) => write!(
                f,
                "`instances` has {n} entries; at most {MAX_BATCH} are allowed per request"
            ),
        }
    }
}

fn invalid(msg: String) -> InputError {
    InputError::Invalid(msg)
}

/// Quotes user input for an error message, cut to a readable length.
pub(crate) fn shown(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("`{s}`")
    } else {
        format!("`{}…`", s.chars().take(MAX).collect::<String>())
    }
}

/// Checks one measurement: finite, > 0 and ≤ 100 cm.
pub fn check_measurement(field: &str, v: f64) -> Result<f64, InputError> {
    if v.is_nan() {
        Err(invalid(format!("`{field}` must be a number, not NaN")))
    } else if v.is_infinite() {
        Err(invalid(format!("`{field}` must be finite, not {v}")))
    } else if v <= MIN_CM_EXCLUSIVE {
        Err(invalid(format!(
            "`{field}` must be greater than 0 cm, got {v}"
        )))
    } else if v > MAX_CM {
        Err(invalid(format!(
            "`{field}` must be at most {MAX_CM} cm, got {v}"
        )))
    } else {
        Ok(v)
    }
}

/// Parses a measurement given as text (a query parameter value).
pub fn parse_measurement(field: &str, text: &str) -> Result<f64, InputError> {
    match text.parse::<f64>() {
        Ok(v) => check_measurement(field, v),
        Err(_) if text.is_empty() => Err(invalid(format!(
            "`{field}` is empty; it must be a number in cm"
        ))),
        Err(_) => Err(invalid(format!(
            "`{field}` must be a number in cm, got {}",
            shown(text)
        ))),
    }
}

fn feature_index(name: &str) -> Option<usize> {
    FEATURES.iter().position(|f| *f == name)
}

/// Parses a query string (without the `?`) that must hold exactly the
/// parameters `sl`, `sw`, `pl` and `pw`, each once.
pub fn parse_query(query: Option<&str>) -> Result<Features, InputError> {
    let mut values: [Option<f64>; 4] = [None; 4];
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let i = feature_index(&key).ok_or_else(|| {
            invalid(format!(
                "unknown parameter {}; expected exactly sl, sw, pl and pw",
                shown(&key)
            ))
        })?;
        if values[i].is_some() {
            return Err(invalid(format!(
                "parameter `{key}` is given more than once"
            )));
        }
        values[i] = Some(parse_measurement(&key, &value)?);
    }
    let mut out = [0.0; 4];
    for (i, v) in values.iter().enumerate() {
        out[i] = v.ok_or_else(|| {
            invalid(format!(
                "missing parameter `{}`; expected exactly sl, sw, pl and pw",
                FEATURES[i]
            ))
        })?;
    }
    Ok(out)
}

fn json_measurement(field: &str, v: &Value) -> Result<f64, InputError> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) => check_measurement(field, x),
            None => Err(invalid(format!(
                "`{field}` is not representable as a number"
            ))),
        },
        other => Err(invalid(format!(
            "`{field}` must be a number in cm, got {}",
            json_type(other)
        ))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_instance(i: usize, v: &Value) -> Result<Features, InputError> {
    let mut out = [0.0; 4];
    match v {
        Value::Array(items) => {
            if items.len() != 4 {
                return Err(invalid(format!(
                    "`instances[{i}]` has {} values; an array instance needs exactly 4 (sl, sw, pl, pw)",
                    items.len()
                )));
            }
            for (j, item) in items.iter().enumerate() {
                out[j] = json_measurement(&format!("instances[{i}][{j}]"), item)?;
            }
        }
        Value::Object(map) => {
            for key in map.keys() {
                if feature_index(key).is_none() {
                    return Err(invalid(format!(
                        "`instances[{i}]` has unknown key {}; expected exactly sl, sw, pl and pw",
                        shown(key)
                    )));
                }
            }
            for (j, name) in FEATURES.iter().enumerate() {
                let item = map.get(*name).ok_or_else(|| {
                    invalid(format!(
                        "`instances[{i}]` is missing key `{name}`; expected exactly sl, sw, pl and pw"
                    ))
                })?;
                out[j] = json_measurement(&format!("instances[{i}].{name}"), item)?;
            }
        }
        other => {
            return Err(invalid(format!(
                "`instances[{i}]` must be an array of 4 numbers or an object with sl, sw, pl, pw; got {}",
                json_type(other)
            )))
        }
    }
    Ok(out)
}

/// Parses a batch body `{"instances": [...]}` (TF Serving / KServe V1
/// protocol). Each instance is `[sl, sw, pl, pw]` or
/// `{"sl":…, "sw":…, "pl":…, "pw":…}`.
pub fn parse_instances(body: &[u8]) -> Result<Vec<Features>, InputError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("request body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(invalid(format!(
            "request body must be a JSON object with an `instances` array, got {}",
            json_type(&value)
        )));
    };
    if let Some(key) = map.keys().find(|k| *k != "instances") {
        return Err(invalid(format!(
            "unknown key {} in request body; only `instances` is allowed",
            shown(key)
        )));
    }
    let instances = match map.get("instances") {
        None => return Err(invalid("request body is missing `instances`".into())),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(invalid(format!(
                "`instances` must be an array, got {}",
                json_type(other)
            )))
        }
    };
    if instances.is_empty() {
        return Err(invalid(
            "`instances` is empty; send at least one instance".into(),
        ));
    }
    if instances.len() > MAX_BATCH {
        return Err(InputError::TooMany(instances.len()));
    }
    instances
        .iter()
        .enumerate()
        .map(|(i, v)| parse_instance(i, v))
        .collect()
}
