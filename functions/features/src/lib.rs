//! `fn-features` owns rows of named numeric features: the query string of a model's
//! named-feature route (`?sl=&sw=&pl=&pw=`) and the `{"instances": [...]}` body of KServe V1,
//! decoded and checked against each [`Feature`]'s bounds, with messages that name the field and
//! the rule. The iris function (its fixed four measurements in cm) and the generic ONNX model
//! server (the features its `model.json` lists) both parse with it, so the two answer the same
//! input with the same words and one can be canaried onto the other's route.

use serde::Deserialize;
use serde_json::Value;

/// One input column and the values it accepts (in a model's metadata: `features`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Feature {
    pub name: String,
    /// Shown after numbers in error messages (`cm`).
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub greater_than: Option<f64>,
    #[serde(default)]
    pub at_least: Option<f64>,
    #[serde(default)]
    pub less_than: Option<f64>,
    #[serde(default)]
    pub at_most: Option<f64>,
}

/// Largest number of rows one request may carry (more → 413).
pub const MAX_BATCH: usize = 10_000;

/// Why a request's rows were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// 400: the input breaks a rule; the message names the field and the rule.
    Invalid(String),
    /// 413: more than [`MAX_BATCH`] rows.
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
pub fn shown(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        format!("`{s}`")
    } else {
        format!("`{}…`", s.chars().take(MAX).collect::<String>())
    }
}

/// `" cm"` for a feature with a unit, `""` without.
fn unit(f: &Feature) -> String {
    f.unit.as_ref().map(|u| format!(" {u}")).unwrap_or_default()
}

/// `sl, sw, pl and pw`.
fn expected_names(features: &[Feature]) -> String {
    match features {
        [] => String::new(),
        [one] => one.name.clone(),
        [init @ .., last] => format!(
            "{} and {}",
            init.iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            last.name
        ),
    }
}

fn comma_names(features: &[Feature]) -> String {
    features
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks one value of `feature` given in `field`: a finite number within the feature's bounds.
pub fn check_value(feature: &Feature, field: &str, v: f64) -> Result<f64, InputError> {
    let u = unit(feature);
    if v.is_nan() {
        return Err(invalid(format!("`{field}` must be a number, not NaN")));
    }
    if v.is_infinite() {
        return Err(invalid(format!("`{field}` must be finite, not {v}")));
    }
    let broken = |rule: &str, bound: f64| {
        Err(invalid(format!(
            "`{field}` must be {rule} {bound}{u}, got {v}"
        )))
    };
    match (
        feature.greater_than,
        feature.at_least,
        feature.less_than,
        feature.at_most,
    ) {
        (Some(b), _, _, _) if v <= b => broken("greater than", b),
        (_, Some(b), _, _) if v < b => broken("at least", b),
        (_, _, Some(b), _) if v >= b => broken("less than", b),
        (_, _, _, Some(b)) if v > b => broken("at most", b),
        _ => Ok(v),
    }
}

/// Parses a value given as text (a query parameter).
fn parse_text(feature: &Feature, text: &str) -> Result<f64, InputError> {
    let (field, u) = (&feature.name, unit(feature));
    match text.parse::<f64>() {
        Ok(v) => check_value(feature, field, v),
        Err(_) if text.is_empty() => Err(invalid(format!(
            "`{field}` is empty; it must be a number{}",
            in_unit(&u)
        ))),
        Err(_) => Err(invalid(format!(
            "`{field}` must be a number{}, got {}",
            in_unit(&u),
            shown(text)
        ))),
    }
}

/// `" in cm"` for a unit `" cm"`.
fn in_unit(u: &str) -> String {
    if u.is_empty() {
        String::new()
    } else {
        format!(" in{u}")
    }
}

/// Parses a query string (without `?`) that must hold every feature exactly once.
pub fn parse_query(features: &[Feature], query: Option<&str>) -> Result<Vec<f64>, InputError> {
    let mut values: Vec<Option<f64>> = vec![None; features.len()];
    for (key, value) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let i = features.iter().position(|f| f.name == key).ok_or_else(|| {
            invalid(format!(
                "unknown parameter {}; expected exactly {}",
                shown(&key),
                expected_names(features)
            ))
        })?;
        if values[i].is_some() {
            return Err(invalid(format!(
                "parameter `{key}` is given more than once"
            )));
        }
        values[i] = Some(parse_text(&features[i], &value)?);
    }
    values
        .iter()
        .zip(features)
        .map(|(v, f)| {
            v.ok_or_else(|| {
                invalid(format!(
                    "missing parameter `{}`; expected exactly {}",
                    f.name,
                    expected_names(features)
                ))
            })
        })
        .collect()
}

fn json_value(feature: &Feature, field: &str, v: &Value) -> Result<f64, InputError> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) => check_value(feature, field, x),
            None => Err(invalid(format!(
                "`{field}` is not representable as a number"
            ))),
        },
        other => Err(invalid(format!(
            "`{field}` must be a number{}, got {}",
            in_unit(&unit(feature)),
            json_type(other)
        ))),
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One instance: an array of every feature in order, or (when `named`) an object with every
/// feature's name.
fn parse_instance(
    features: &[Feature],
    named: bool,
    i: usize,
    v: &Value,
) -> Result<Vec<f64>, InputError> {
    let n = features.len();
    match v {
        Value::Array(items) => {
            if items.len() != n {
                return Err(invalid(format!(
                    "`instances[{i}]` has {} values; an array instance needs exactly {n} ({})",
                    items.len(),
                    comma_names(features)
                )));
            }
            items
                .iter()
                .zip(features)
                .enumerate()
                .map(|(j, (item, f))| json_value(f, &format!("instances[{i}][{j}]"), item))
                .collect()
        }
        Value::Object(map) if named => {
            for key in map.keys() {
                if !features.iter().any(|f| &f.name == key) {
                    return Err(invalid(format!(
                        "`instances[{i}]` has unknown key {}; expected exactly {}",
                        shown(key),
                        expected_names(features)
                    )));
                }
            }
            features
                .iter()
                .map(|f| {
                    let item = map.get(&f.name).ok_or_else(|| {
                        invalid(format!(
                            "`instances[{i}]` is missing key `{}`; expected exactly {}",
                            f.name,
                            expected_names(features)
                        ))
                    })?;
                    json_value(f, &format!("instances[{i}].{}", f.name), item)
                })
                .collect()
        }
        other if named => Err(invalid(format!(
            "`instances[{i}]` must be an array of {n} numbers or an object with {}; got {}",
            comma_names(features),
            json_type(other)
        ))),
        other => Err(invalid(format!(
            "`instances[{i}]` must be an array of {n} numbers; got {}",
            json_type(other)
        ))),
    }
}

/// Parses `{"instances": [...]}` (the V1 protocol of TF Serving and KServe).
pub fn parse_instances(
    features: &[Feature],
    named: bool,
    body: &[u8],
) -> Result<Vec<Vec<f64>>, InputError> {
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
        .map(|(i, v)| parse_instance(features, named, i, v))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iris() -> Vec<Feature> {
        ["sl", "sw", "pl", "pw"]
            .iter()
            .map(|n| Feature {
                name: n.to_string(),
                unit: Some("cm".into()),
                greater_than: Some(0.0),
                at_least: None,
                less_than: None,
                at_most: Some(100.0),
            })
            .collect()
    }

    fn query_error(q: &str) -> String {
        parse_query(&iris(), Some(q)).unwrap_err().to_string()
    }

    #[test]
    fn query_rules_name_field_and_rule() {
        assert_eq!(
            parse_query(&iris(), Some("pw=0.2&sl=5.1&sw=3.5&pl=1.4")).unwrap(),
            vec![5.1, 3.5, 1.4, 0.2]
        );
        for (q, msg) in [
            (
                "sl=5&sw=3&pl=1",
                "missing parameter `pw`; expected exactly sl, sw, pl and pw",
            ),
            (
                "sl=5&sl=5&sw=3&pl=1&pw=1",
                "parameter `sl` is given more than once",
            ),
            (
                "sl=5&sw=3&pl=1&pw=1&x=1",
                "unknown parameter `x`; expected exactly sl, sw, pl and pw",
            ),
            (
                "sl=&sw=3&pl=1&pw=1",
                "`sl` is empty; it must be a number in cm",
            ),
            (
                "sl=abc&sw=3&pl=1&pw=1",
                "`sl` must be a number in cm, got `abc`",
            ),
            ("sl=NaN&sw=3&pl=1&pw=1", "`sl` must be a number, not NaN"),
            ("sl=inf&sw=3&pl=1&pw=1", "`sl` must be finite, not inf"),
            (
                "sl=0&sw=3&pl=1&pw=1",
                "`sl` must be greater than 0 cm, got 0",
            ),
            (
                "sl=100.5&sw=3&pl=1&pw=1",
                "`sl` must be at most 100 cm, got 100.5",
            ),
        ] {
            assert_eq!(query_error(q), msg, "{q}");
        }
    }

    #[test]
    fn bounds_without_unit_and_inclusive_rules() {
        let f = Feature {
            name: "age".into(),
            unit: None,
            greater_than: None,
            at_least: Some(-1.0),
            less_than: Some(1.0),
            at_most: None,
        };
        assert!(check_value(&f, "age", -1.0).is_ok());
        assert_eq!(
            check_value(&f, "age", 1.0).unwrap_err().to_string(),
            "`age` must be less than 1, got 1"
        );
        assert_eq!(
            check_value(&f, "age", -1.5).unwrap_err().to_string(),
            "`age` must be at least -1, got -1.5"
        );
    }

    #[test]
    fn instances_as_arrays_or_named_objects() {
        let rows = parse_instances(
            &iris(),
            true,
            br#"{"instances":[[5.1,3.5,1.4,0.2],{"pw":2.3,"pl":5.2,"sw":3.0,"sl":6.7}]}"#,
        )
        .unwrap();
        assert_eq!(
            rows,
            vec![vec![5.1, 3.5, 1.4, 0.2], vec![6.7, 3.0, 5.2, 2.3]]
        );
        for (body, msg) in [
            (r#"{"instances":[[1,2,3]]}"#, "`instances[0]` has 3 values; an array instance needs exactly 4 (sl, sw, pl, pw)"),
            (r#"{"instances":[{"sl":1,"sw":1,"pl":1}]}"#, "`instances[0]` is missing key `pw`"),
            (r#"{"instances":[{"sl":1,"sw":1,"pl":1,"pw":1,"x":1}]}"#, "`instances[0]` has unknown key `x`"),
            (r#"{"instances":["a"]}"#, "`instances[0]` must be an array of 4 numbers or an object with sl, sw, pl, pw; got a string"),
            (r#"{"instances":[[1,2,"3",4]]}"#, "`instances[0][2]` must be a number in cm, got a string"),
            (r#"{"instances":[]}"#, "`instances` is empty"),
            (r#"{"rows":[]}"#, "unknown key `rows` in request body"),
            (r#"[1]"#, "request body must be a JSON object"),
            (r#"{"#, "request body is not valid JSON"),
        ] {
            let e = parse_instances(&iris(), true, body.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with(msg), "{body}: {e}");
        }
        let unnamed = parse_instances(&iris(), false, br#"{"instances":[{"sl":1}]}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            unnamed,
            "`instances[0]` must be an array of 4 numbers; got an object"
        );
    }

    #[test]
    fn batch_limit() {
        let body = format!(
            "{{\"instances\":[{}]}}",
            vec!["[1,1,1,1]"; MAX_BATCH + 1].join(",")
        );
        assert_eq!(
            parse_instances(&iris(), true, body.as_bytes()),
            Err(InputError::TooMany(MAX_BATCH + 1))
        );
    }
}
