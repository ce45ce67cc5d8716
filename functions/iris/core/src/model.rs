//! The model artifact (`fnhost-iris-model/1`, see `functions/iris/MODEL_FORMAT.md`):
//! its on-disk JSON shape ([`Artifact`] and the kind-specific parameter types),
//! loading and validating it into a [`Model`] ([`load_model`], [`ModelError`]),
//! and prediction, which reproduces what linfa's fitted models predict.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The value of the artifact's `format` field that this crate reads and writes.
pub const FORMAT: &str = "fnhost-iris-model/1";

/// The feature names, in the order every model's inputs use.
pub const FEATURES: [&str; 4] = ["sl", "sw", "pl", "pw"];

/// `kind` of a multinomial logistic regression (linfa-logistic).
pub const KIND_LOGISTIC_REGRESSION: &str = "logistic_regression";
/// `kind` of a k-nearest-neighbours classifier (neighbour search by linfa-nn).
pub const KIND_K_NEAREST_NEIGHBORS: &str = "k_nearest_neighbors";
/// The only `metric` a k-NN artifact may name.
pub const METRIC_EUCLIDEAN: &str = "euclidean";

/// One flower's measurements in cm, in [`FEATURES`] order: sepal length,
/// sepal width, petal length, petal width.
pub type Features = [f64; 4];

/// The artifact exactly as stored in `model.json`; fields serialise in this order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    pub format: String,
    pub name: String,
    pub version: String,
    pub kind: String,
    pub features: Vec<String>,
    pub classes: Vec<String>,
    /// Kind-specific: [`LogisticRegressionParameters`] or [`KnnParameters`].
    pub parameters: serde_json::Value,
    pub cv_accuracy: f64,
    pub cv_folds: u32,
    pub trained_on: String,
}

impl Artifact {
    /// The artifact as written to disk: pretty-printed JSON with a final newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("artifact serialises");
        s.push('\n');
        s
    }
}

/// Parameters of `kind = "logistic_regression"`: class scores are
/// `x · weights + intercepts`; the prediction is the first class with the
/// highest score and the probabilities are the softmax of the scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogisticRegressionParameters {
    /// One row per feature, one column per class (`features × classes`).
    pub weights: Vec<Vec<f64>>,
    /// One per class.
    pub intercepts: Vec<f64>,
}

/// Parameters of `kind = "k_nearest_neighbors"`: the training points and
/// their class indices. A flower is classified by the points whose squared
/// Euclidean distance to it is at most that of its `k`-th nearest point (so
/// points tied with the `k`-th are all included): the class with the most such
/// points wins, the first class on ties, and each class's share of those
/// points is its probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnnParameters {
    pub k: usize,
    /// Always [`METRIC_EUCLIDEAN`].
    pub metric: String,
    /// Training measurements in [`FEATURES`] order.
    pub points: Vec<Features>,
    /// Class index of each point.
    pub labels: Vec<usize>,
}

/// Why no model can be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// The artifact file is absent or unreadable (set by the caller that reads it).
    Missing(String),
    /// The bytes are not a well-formed artifact of a supported format.
    Corrupt(String),
    /// A well-formed artifact of a format, kind or feature set this build does not serve.
    Unsupported(String),
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelError::Missing(m) => write!(f, "model missing: {m}"),
            ModelError::Corrupt(m) => write!(f, "model corrupt: {m}"),
            ModelError::Unsupported(m) => write!(f, "model unsupported: {m}"),
        }
    }
}

impl std::error::Error for ModelError {}

/// A validated, ready-to-use model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    artifact: Artifact,
    predictor: Predictor,
}

#[derive(Debug, Clone, PartialEq)]
enum Predictor {
    Logistic {
        /// `weights[f][c]`
        weights: Vec<[f64; 4]>,
        intercepts: Vec<f64>,
    },
    Knn {
        k: usize,
        points: Vec<Features>,
        labels: Vec<usize>,
    },
}

/// What a model says about one flower.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// Index into [`Model::classes`].
    pub class: usize,
    /// One per class, summing to 1; `None` for kinds without probabilities
    /// (both current kinds have them).
    pub probabilities: Option<Vec<f64>>,
}

/// Parses and validates an artifact, in one pass over the text: the `format` field is looked
/// at on its own only to explain an artifact that does not parse (the component parses its
/// model on every request).
pub fn load_model(bytes: &[u8]) -> Result<Model, ModelError> {
    match serde_json::from_slice::<Artifact>(bytes) {
        Ok(artifact) => Model::from_artifact(artifact),
        Err(e) if e.classify() == serde_json::error::Category::Data => {
            Err(format_error(bytes).unwrap_or_else(|| corrupt(format!("bad artifact: {e}"))))
        }
        Err(e) => Err(corrupt(format!("not valid JSON: {e}"))),
    }
}

/// Why well-formed JSON that is not an artifact is refused, when its `format` field says:
/// absent or not a string (corrupt) or another format (unsupported); `None` for this format.
fn format_error(bytes: &[u8]) -> Option<ModelError> {
    #[derive(Deserialize)]
    struct FormatOnly {
        format: Option<serde_json::Value>,
    }
    let format = match serde_json::from_slice::<FormatOnly>(bytes) {
        Ok(probe) => probe.format,
        Err(_) => return Some(corrupt("not an artifact object")),
    };
    match format {
        Some(serde_json::Value::String(f)) if f == FORMAT => None,
        Some(serde_json::Value::String(f)) => Some(ModelError::Unsupported(format!(
            "format `{f}`; this build reads `{FORMAT}`"
        ))),
        Some(_) => Some(corrupt("`format` is not a string")),
        None => Some(corrupt("no `format` field")),
    }
}

fn corrupt(msg: impl Into<String>) -> ModelError {
    ModelError::Corrupt(msg.into())
}

impl Model {
    /// Validates an artifact (shape, ranges, finiteness) into a model.
    pub fn from_artifact(artifact: Artifact) -> Result<Model, ModelError> {
        if artifact.format != FORMAT {
            return Err(ModelError::Unsupported(format!(
                "format `{}`; this build reads `{FORMAT}`",
                artifact.format
            )));
        }
        if artifact.features != FEATURES {
            return Err(ModelError::Unsupported(format!(
                "features {:?}; this build serves {:?}",
                artifact.features, FEATURES
            )));
        }
        if artifact.name.is_empty() || artifact.version.is_empty() {
            return Err(corrupt("`name` and `version` must not be empty"));
        }
        let n_classes = artifact.classes.len();
        if n_classes == 0 {
            return Err(corrupt("`classes` is empty"));
        }
        for (i, c) in artifact.classes.iter().enumerate() {
            if c.is_empty() || artifact.classes[..i].contains(c) {
                return Err(corrupt(format!("class name `{c}` is empty or repeated")));
            }
        }
        let predictor = match artifact.kind.as_str() {
            KIND_LOGISTIC_REGRESSION => {
                let p = LogisticRegressionParameters::deserialize(&artifact.parameters)
                        .map_err(|e| corrupt(format!("bad logistic_regression parameters: {e}")))?;
                if p.weights.len() != FEATURES.len() {
                    return Err(corrupt(format!(
                        "`weights` has {} rows, expected one per feature ({})",
                        p.weights.len(),
                        FEATURES.len()
                    )));
                }
                if p.weights.iter().any(|row| row.len() != n_classes) {
                    return Err(corrupt(format!(
                        "every `weights` row needs one entry per class ({n_classes})"
                    )));
                }
                if p.intercepts.len() != n_classes {
                    return Err(corrupt(format!(
                        "`intercepts` has {} entries, expected {n_classes}",
                        p.intercepts.len()
                    )));
                }
                if !p.weights.iter().flatten().chain(&p.intercepts).all(|v| v.is_finite()) {
                    return Err(corrupt("non-finite logistic_regression parameter"));
                }
                // Transpose to one row of feature weights per class.
                let weights = (0..n_classes)
                    .map(|c| [p.weights[0][c], p.weights[1][c], p.weights[2][c], p.weights[3][c]])
                    .collect();
                Predictor::Logistic {
                    weights,
                    intercepts: p.intercepts,
                }
            }
            KIND_K_NEAREST_NEIGHBORS => {
                let p = KnnParameters::deserialize(&artifact.parameters)
                    .map_err(|e| corrupt(format!("bad k_nearest_neighbors parameters: {e}")))?;
                if p.metric != METRIC_EUCLIDEAN {
                    return Err(ModelError::Unsupported(format!(
                        "metric `{}`; this build computes `{METRIC_EUCLIDEAN}`",
                        p.metric
                    )));
                }
                if p.points.len() != p.labels.len() {
                    return Err(corrupt(format!(
                        "{} points but {} labels",
                        p.points.len(),
                        p.labels.len()
                    )));
                }
                if p.k == 0 || p.k > p.points.len() {
                    return Err(corrupt(format!(
                        "k = {} must be between 1 and the number of points ({})",
                        p.k,
                        p.points.len()
                    )));
                }
                if !p.points.iter().flatten().all(|v| v.is_finite()) {
                    return Err(corrupt("non-finite k_nearest_neighbors point"));
                }
                if let Some(l) = p.labels.iter().find(|&&l| l >= n_classes) {
                    return Err(corrupt(format!("label {l} out of range")));
                }
                Predictor::Knn {
                    k: p.k,
                    points: p.points,
                    labels: p.labels,
                }
            }
            other => {
                return Err(ModelError::Unsupported(format!(
                    "kind `{other}`; this build serves `{KIND_LOGISTIC_REGRESSION}` and `{KIND_K_NEAREST_NEIGHBORS}`"
                )))
            }
        };
        Ok(Model {
            artifact,
            predictor,
        })
    }

    /// `name@version`, e.g. `iris-logreg@1`.
    pub fn id(&self) -> String {
        format!("{}@{}", self.artifact.name, self.artifact.version)
    }

    pub fn classes(&self) -> &[String] {
        &self.artifact.classes
    }

    pub fn artifact(&self) -> &Artifact {
        &self.artifact
    }

    /// Predicts one flower. Inputs are assumed finite (the HTTP layer checks).
    pub fn predict(&self, x: &Features) -> Prediction {
        match &self.predictor {
            Predictor::Logistic {
                weights,
                intercepts,
            } => {
                let scores: Vec<f64> = weights
                    .iter()
                    .zip(intercepts)
                    .map(|(w, b)| x[0] * w[0] + x[1] * w[1] + x[2] * w[2] + x[3] * w[3] + b)
                    .collect();
                // linfa: argmax of the unnormalised scores, first one on ties.
                let mut class = 0;
                for (c, s) in scores.iter().enumerate() {
                    if *s > scores[class] {
                        class = c;
                    }
                }
                // linfa's softmax: exp(s - max) / sum.
                let max = scores[class];
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                Prediction {
                    class,
                    probabilities: Some(exps.iter().map(|e| e / sum).collect()),
                }
            }
            Predictor::Knn { k, points, labels } => {
                let distances: Vec<f64> = points.iter().map(|p| squared_distance(x, p)).collect();
                let mut sorted = distances.clone();
                sorted.sort_unstable_by(f64::total_cmp);
                let radius = sorted[*k - 1];
                let mut votes = vec![0usize; self.artifact.classes.len()];
                for (d, &label) in distances.iter().zip(labels) {
                    if *d <= radius {
                        votes[label] += 1;
                    }
                }
                let mut class = 0;
                for (c, v) in votes.iter().enumerate() {
                    if *v > votes[class] {
                        class = c;
                    }
                }
                let total: usize = votes.iter().sum();
                Prediction {
                    class,
                    probabilities: Some(votes.iter().map(|&v| v as f64 / total as f64).collect()),
                }
            }
        }
    }

    /// The predicted class name.
    pub fn predict_species(&self, x: &Features) -> &str {
        &self.artifact.classes[self.predict(x).class]
    }
}

/// `Σ (a_j − b_j)²` in feature order: the same operations as linfa-nn's
/// `L2Dist::rdistance` (ndarray-stats' `sq_l2_dist`), so the same bits.
pub fn squared_distance(a: &Features, b: &Features) -> f64 {
    let mut sum = 0.0;
    for j in 0..a.len() {
        let d = a[j] - b[j];
        sum += d * d;
    }
    sum
}
