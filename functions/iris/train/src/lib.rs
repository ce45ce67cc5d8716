//! `iris-train`: reads the Iris CSV, trains the two served models with linfa
//! (v1: multinomial logistic regression from linfa-logistic; v2: k-nearest
//! neighbours with linfa-nn's neighbour search), estimates each one's accuracy by seeded, stratified
//! 10-fold cross-validation, and turns the fitted linfa models into
//! `fnhost-iris-model/1` artifacts that `iris-core` predicts from. Everything is
//! deterministic: the same CSV gives byte-identical artifacts.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use iris_core::{
    Artifact, Features, KnnParameters, LogisticRegressionParameters, FEATURES, FORMAT,
    KIND_K_NEAREST_NEIGHBORS, KIND_LOGISTIC_REGRESSION, METRIC_EUCLIDEAN,
};
use linfa::prelude::*;
use linfa_logistic::{MultiFittedLogisticRegression, MultiLogisticRegression};
use linfa_nn::distance::{Distance, L2Dist};
use linfa_nn::{CommonNearestNeighbour, NearestNeighbour};
use ndarray::{Array1, Array2, Ix1};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// Class names as spelled in the CSV and in the artifacts; the index is the
/// label linfa trains on.
pub const CLASSES: [&str; 3] = ["Iris setosa", "Iris versicolor", "Iris virginica"];
/// The CSV header the trainer insists on.
pub const CSV_HEADER: &str = "sepal_length,sepal_width,petal_length,petal_width,species";
/// Folds of the cross-validation.
pub const CV_FOLDS: usize = 10;
/// Seed of the fold assignment.
pub const CV_SEED: u64 = 20_240_601;
/// A model whose cross-validated accuracy is below this is not written.
pub const MIN_CV_ACCURACY: f64 = 0.95;

/// Logistic regression settings: L2 penalty (linfa's default) and the LBFGS
/// iteration cap (raised from linfa's 100 so the optimiser converges).
pub const LOGREG_ALPHA: f64 = 1.0;
pub const LOGREG_MAX_ITERATIONS: u64 = 1000;
/// Neighbours consulted by the k-NN model (scikit-learn's default, fixed
/// before looking at any accuracy).
pub const KNN_K: usize = 5;

/// The labelled data set.
#[derive(Debug, Clone)]
pub struct Data {
    pub rows: Vec<Features>,
    /// Index into [`CLASSES`] per row.
    pub labels: Vec<usize>,
    /// `<path> sha256:<hex>`, recorded as the artifacts' `trained_on`.
    pub trained_on: String,
}

impl Data {
    pub fn records(&self) -> Array2<f64> {
        Array2::from_shape_fn((self.rows.len(), 4), |(i, j)| self.rows[i][j])
    }

    pub fn targets(&self) -> Array1<usize> {
        Array1::from(self.labels.clone())
    }

    fn subset(&self, idx: &[usize]) -> Dataset<f64, usize, Ix1> {
        let records = Array2::from_shape_fn((idx.len(), 4), |(i, j)| self.rows[idx[i]][j]);
        let targets = Array1::from_iter(idx.iter().map(|&i| self.labels[i]));
        Dataset::new(records, targets).with_feature_names(FEATURES.to_vec())
    }

    pub fn dataset(&self) -> Dataset<f64, usize, Ix1> {
        self.subset(&(0..self.rows.len()).collect::<Vec<_>>())
    }
}

/// The workspace root (three levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..")
}

/// How the data file is named in `trained_on`: relative to the workspace root
/// when it lies inside it (so the record does not depend on the current
/// directory), else as given.
fn display_path(path: &Path) -> String {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    if let (Some(file), Some(root)) = (canon(path), canon(&workspace_root())) {
        if let Ok(rel) = file.strip_prefix(&root) {
            return rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
        }
    }
    path.display().to_string()
}

/// Reads and checks the CSV: the exact header, 4 positive finite numbers and a
/// known species per row.
pub fn load_csv(path: &Path) -> Result<Data, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text =
        std::str::from_utf8(&bytes).map_err(|_| format!("{} is not UTF-8", path.display()))?;
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h == CSV_HEADER => {}
        other => {
            return Err(format!(
                "{}: header must be `{CSV_HEADER}`, found {other:?}",
                path.display()
            ))
        }
    }
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for (n, line) in lines.enumerate() {
        let line_no = n + 2;
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 5 {
            return Err(format!("{}:{line_no}: expected 5 fields", path.display()));
        }
        let mut x = [0.0; 4];
        for j in 0..4 {
            x[j] = fields[j]
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| {
                    format!(
                        "{}:{line_no}: bad measurement `{}`",
                        path.display(),
                        fields[j]
                    )
                })?;
        }
        let label = CLASSES
            .iter()
            .position(|c| *c == fields[4])
            .ok_or_else(|| {
                format!(
                    "{}:{line_no}: unknown species `{}`",
                    path.display(),
                    fields[4]
                )
            })?;
        rows.push(x);
        labels.push(label);
    }
    for (c, name) in CLASSES.iter().enumerate() {
        if !labels.contains(&c) {
            return Err(format!("{}: no rows of `{name}`", path.display()));
        }
    }
    let digest = Sha256::digest(&bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        write!(hex, "{b:02x}").unwrap();
    }
    Ok(Data {
        rows,
        labels,
        trained_on: format!("{} sha256:{hex}", display_path(path)),
    })
}

/// Stratified fold assignment: each class's rows are shuffled with a seeded
/// ChaCha8 generator and dealt round-robin to the folds.
pub fn folds(labels: &[usize], k: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = vec![Vec::new(); k];
    let mut next = 0;
    for class in 0..CLASSES.len() {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == class).collect();
        idx.shuffle(&mut rng);
        for i in idx {
            out[next % k].push(i);
            next += 1;
        }
    }
    for f in &mut out {
        f.sort_unstable();
    }
    out
}

/// Fraction of rows that `fit` + `predict` get right when each fold is
/// predicted by a model trained on the other folds.
pub fn cross_validate<M>(
    data: &Data,
    fit: impl Fn(&Dataset<f64, usize, Ix1>) -> Result<M, String>,
    predict: impl Fn(&M, &Array2<f64>) -> Result<Array1<usize>, String>,
) -> Result<f64, String> {
    let mut correct = 0usize;
    for fold in folds(&data.labels, CV_FOLDS, CV_SEED) {
        let train: Vec<usize> = (0..data.rows.len())
            .filter(|i| fold.binary_search(i).is_err())
            .collect();
        let model = fit(&data.subset(&train))?;
        let test = data.subset(&fold);
        let predicted = predict(&model, test.records())?;
        correct += predicted
            .iter()
            .zip(test.targets())
            .filter(|(p, t)| p == t)
            .count();
    }
    Ok(correct as f64 / data.rows.len() as f64)
}

// ---------------------------------------------------------------- v1: logistic regression

pub type LogReg = MultiFittedLogisticRegression<f64, usize>;

pub fn fit_logreg(ds: &Dataset<f64, usize, Ix1>) -> Result<LogReg, String> {
    MultiLogisticRegression::default()
        .alpha(LOGREG_ALPHA)
        .max_iterations(LOGREG_MAX_ITERATIONS)
        .fit(ds)
        .map_err(|e| format!("linfa-logistic: {e}"))
}

pub fn logreg_artifact(model: &LogReg, data: &Data, cv_accuracy: f64) -> Artifact {
    assert_eq!(model.classes(), &[0, 1, 2], "linfa orders classes by label");
    let params = LogisticRegressionParameters {
        weights: model
            .params()
            .rows()
            .into_iter()
            .map(|r| r.to_vec())
            .collect(),
        intercepts: model.intercept().to_vec(),
    };
    artifact(
        "iris-logreg",
        "1",
        KIND_LOGISTIC_REGRESSION,
        serde_json::to_value(params).unwrap(),
        data,
        cv_accuracy,
    )
}

// ---------------------------------------------------------------- v2: k-nearest neighbours

/// A "fitted" k-NN classifier: the training set, searched with linfa-nn.
#[derive(Debug, Clone)]
pub struct Knn {
    pub points: Array2<f64>,
    pub labels: Vec<usize>,
    pub k: usize,
}

pub fn fit_knn(ds: &Dataset<f64, usize, Ix1>) -> Result<Knn, String> {
    if ds.nsamples() < KNN_K {
        return Err(format!("k-NN needs at least {KNN_K} training rows"));
    }
    Ok(Knn {
        points: ds.records().clone(),
        labels: ds.targets().to_vec(),
        k: KNN_K,
    })
}

impl Knn {
    /// Classifies each row of `x`: linfa-nn's exact linear search finds the
    /// `k` nearest training points (Euclidean); every training point no
    /// farther than the `k`-th (by linfa's `L2Dist::rdistance`) votes, so the
    /// result does not depend on how linfa-nn orders equidistant points; the
    /// most votes win, the lowest class index on ties.
    pub fn predict(&self, x: &Array2<f64>) -> Result<Array1<usize>, String> {
        let index = CommonNearestNeighbour::LinearSearch
            .from_batch(&self.points, L2Dist)
            .map_err(|e| format!("linfa-nn: {e}"))?;
        let mut out = Vec::with_capacity(x.nrows());
        for row in x.rows() {
            let nearest = index
                .k_nearest(row, self.k)
                .map_err(|e| format!("linfa-nn: {e}"))?;
            let radius = nearest
                .iter()
                .map(|(p, _)| L2Dist.rdistance(row, p.view()))
                .fold(f64::NEG_INFINITY, f64::max);
            let mut votes = [0usize; CLASSES.len()];
            for (point, &label) in self.points.rows().into_iter().zip(&self.labels) {
                if L2Dist.rdistance(row, point) <= radius {
                    votes[label] += 1;
                }
            }
            let mut class = 0;
            for c in 1..votes.len() {
                if votes[c] > votes[class] {
                    class = c;
                }
            }
            out.push(class);
        }
        Ok(Array1::from(out))
    }
}

pub fn knn_artifact(knn: &Knn, data: &Data, cv_accuracy: f64) -> Artifact {
    let params = KnnParameters {
        k: knn.k,
        metric: METRIC_EUCLIDEAN.to_string(),
        points: knn
            .points
            .rows()
            .into_iter()
            .map(|r| [r[0], r[1], r[2], r[3]])
            .collect(),
        labels: knn.labels.clone(),
    };
    artifact(
        "iris-knn",
        "2",
        KIND_K_NEAREST_NEIGHBORS,
        serde_json::to_value(params).unwrap(),
        data,
        cv_accuracy,
    )
}

fn artifact(
    name: &str,
    version: &str,
    kind: &str,
    parameters: serde_json::Value,
    data: &Data,
    cv_accuracy: f64,
) -> Artifact {
    Artifact {
        format: FORMAT.to_string(),
        name: name.to_string(),
        version: version.to_string(),
        kind: kind.to_string(),
        features: FEATURES.iter().map(|f| f.to_string()).collect(),
        classes: CLASSES.iter().map(|c| c.to_string()).collect(),
        parameters,
        cv_accuracy,
        cv_folds: CV_FOLDS as u32,
        trained_on: data.trained_on.clone(),
    }
}

// ---------------------------------------------------------------- both

/// One trained model: the linfa object and its artifact.
pub struct Trained<M> {
    pub model: M,
    pub artifact: Artifact,
}

pub struct Models {
    pub v1: Trained<LogReg>,
    pub v2: Trained<Knn>,
}

/// Cross-validates and fits both models on all of `data`. Fails if either
/// model's cross-validated accuracy is below [`MIN_CV_ACCURACY`].
pub fn train(data: &Data) -> Result<Models, String> {
    let cv1 = cross_validate(data, fit_logreg, |m, x| Ok(m.predict(x)))?;
    let cv2 = cross_validate(data, fit_knn, Knn::predict)?;
    for (name, cv) in [
        ("v1 logistic regression", cv1),
        ("v2 k-nearest neighbours", cv2),
    ] {
        if cv < MIN_CV_ACCURACY {
            return Err(format!(
                "{name}: {CV_FOLDS}-fold cross-validated accuracy {cv:.4} is below {MIN_CV_ACCURACY}; not writing models"
            ));
        }
    }
    let all = data.dataset();
    let logreg = fit_logreg(&all)?;
    let knn = fit_knn(&all)?;
    Ok(Models {
        v1: Trained {
            artifact: logreg_artifact(&logreg, data, cv1),
            model: logreg,
        },
        v2: Trained {
            artifact: knn_artifact(&knn, data, cv2),
            model: knn,
        },
    })
}

/// Writes `<out>/v1/model.json` and `<out>/v2/model.json`, each through a
/// temporary file and a rename so a reader never sees half a model.
pub fn write_models(models: &Models, out: &Path) -> Result<Vec<PathBuf>, String> {
    let mut written = Vec::new();
    for (dir, artifact) in [("v1", &models.v1.artifact), ("v2", &models.v2.artifact)] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join("model.json");
        let tmp = dir.join(".model.json.tmp");
        std::fs::write(&tmp, artifact.to_json())
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| format!("cannot rename to {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}
