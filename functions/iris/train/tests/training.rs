//! Checks the trainer against linfa and against the committed artifacts:
//! iris-core reproduces the linfa models' predictions from the written JSON,
//! training is deterministic, `models/iris/` is what training produces now, and
//! the accuracy gate and the command line behave.

use std::path::PathBuf;
use std::process::Command;

use iris_train::{load_csv, train, workspace_root, write_models, Data, CLASSES, CV_FOLDS, CV_SEED};
use linfa::prelude::*;

fn data_path() -> PathBuf {
    workspace_root().join("functions/iris/data/iris.csv")
}

fn data() -> Data {
    load_csv(&data_path()).expect("iris.csv loads")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("iris-train-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn data_is_fishers_iris() {
    let d = data();
    assert_eq!(d.rows.len(), 150);
    for c in 0..CLASSES.len() {
        assert_eq!(d.labels.iter().filter(|&&l| l == c).count(), 50);
    }
    // The two rows UCI got wrong, as corrected by scikit-learn (Fisher 1936).
    assert_eq!(d.rows[34], [4.9, 3.1, 1.5, 0.2]);
    assert_eq!(d.rows[37], [4.9, 3.6, 1.4, 0.1]);
    assert_eq!(
        d.trained_on,
        "functions/iris/data/iris.csv sha256:6abff49031815c31f00be15b15367d84f94319339c4ee4bdd18263fd51627aab"
    );
}

#[test]
fn folds_are_stratified_and_partition_the_rows() {
    let d = data();
    let folds = iris_train::folds(&d.labels, CV_FOLDS, CV_SEED);
    let mut all: Vec<usize> = folds.iter().flatten().copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..150).collect::<Vec<_>>());
    for f in &folds {
        for c in 0..CLASSES.len() {
            assert_eq!(f.iter().filter(|&&i| d.labels[i] == c).count(), 5);
        }
    }
}

#[test]
fn iris_core_reproduces_linfa_from_the_written_artifacts() {
    let d = data();
    let models = train(&d).unwrap();
    let out = scratch("agree");
    write_models(&models, &out).unwrap();
    let v1 = iris_core::load_model(&std::fs::read(out.join("v1/model.json")).unwrap()).unwrap();
    let v2 = iris_core::load_model(&std::fs::read(out.join("v2/model.json")).unwrap()).unwrap();
    assert_eq!(v1.id(), "iris-logreg@1");
    assert_eq!(v2.id(), "iris-knn@2");

    let x = d.records();
    let linfa_v1 = models.v1.model.predict(&x);
    let linfa_v1_prob = models.v1.model.predict_probabilities(&x);
    let linfa_v2 = models.v2.model.predict(&x).unwrap();
    let (mut right_v1, mut right_v2) = (0, 0);
    for (i, row) in d.rows.iter().enumerate() {
        let p1 = v1.predict(row);
        assert_eq!(p1.class, linfa_v1[i], "v1 row {i}");
        let probs = p1.probabilities.unwrap();
        for c in 0..CLASSES.len() {
            assert!(
                (probs[c] - linfa_v1_prob[(i, c)]).abs() < 1e-12,
                "v1 row {i} class {c}"
            );
        }
        let p2 = v2.predict(row);
        assert_eq!(p2.class, linfa_v2[i], "v2 row {i}");
        right_v1 += usize::from(p1.class == d.labels[i]);
        right_v2 += usize::from(p2.class == d.labels[i]);
    }
    assert!(
        right_v1 as f64 / 150.0 >= 0.95,
        "v1 training accuracy {right_v1}/150"
    );
    assert!(
        right_v2 as f64 / 150.0 >= 0.95,
        "v2 training accuracy {right_v2}/150"
    );

    // Off the training points too (k-NN ties at the k-th distance are common
    // on the 0.1 cm grid): a grid over the data's range.
    let mut grid = Vec::new();
    for sl in [4.3, 5.0, 5.8, 6.5, 7.9] {
        for sw in [2.0, 2.8, 3.0, 3.4, 4.4] {
            for pl in [1.0, 2.5, 4.5, 4.9, 5.1, 6.9] {
                for pw in [0.1, 0.8, 1.5, 1.7, 1.8, 2.5] {
                    grid.push([sl, sw, pl, pw]);
                }
            }
        }
    }
    let gx = ndarray::Array2::from_shape_fn((grid.len(), 4), |(i, j)| grid[i][j]);
    let g1 = models.v1.model.predict(&gx);
    let g2 = models.v2.model.predict(&gx).unwrap();
    for (i, row) in grid.iter().enumerate() {
        assert_eq!(v1.predict(row).class, g1[i], "v1 grid {row:?}");
        assert_eq!(v2.predict(row).class, g2[i], "v2 grid {row:?}");
    }
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn training_twice_gives_identical_artifacts() {
    let d = data();
    let a = train(&d).unwrap();
    let b = train(&d).unwrap();
    assert_eq!(a.v1.artifact.to_json(), b.v1.artifact.to_json());
    assert_eq!(a.v2.artifact.to_json(), b.v2.artifact.to_json());
    assert!(a.v1.artifact.cv_accuracy >= iris_train::MIN_CV_ACCURACY);
    assert!(a.v2.artifact.cv_accuracy >= iris_train::MIN_CV_ACCURACY);
}

#[test]
fn committed_artifacts_are_what_training_produces() {
    let models = train(&data()).unwrap();
    for (dir, artifact) in [("v1", &models.v1.artifact), ("v2", &models.v2.artifact)] {
        let path = workspace_root()
            .join("models/iris")
            .join(dir)
            .join("model.json");
        let committed = std::fs::read_to_string(&path).unwrap();
        assert!(
            committed == artifact.to_json(),
            "{} is stale; run `cargo run --release -p iris-train -- --data functions/iris/data/iris.csv --out models/iris`",
            path.display()
        );
    }
}

#[test]
fn refuses_models_below_the_accuracy_gate() {
    // Real measurements with labels dealt round-robin: nothing to learn.
    let text = std::fs::read_to_string(data_path()).unwrap();
    let mut lines = text.lines();
    let mut csv = format!("{}\n", lines.next().unwrap());
    for (i, line) in lines.enumerate() {
        let (x, _) = line.rsplit_once(',').unwrap();
        csv += &format!("{x},{}\n", CLASSES[i % 3]);
    }
    let dir = scratch("gate");
    let path = dir.join("scrambled.csv");
    std::fs::write(&path, csv).unwrap();
    let err = train(&load_csv(&path).unwrap())
        .err()
        .expect("training must refuse");
    assert!(err.contains("below 0.95"), "{err}");

    let out = dir.join("out");
    let status = Command::new(env!("CARGO_BIN_EXE_iris-train"))
        .arg("--data")
        .arg(&path)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!status.status.success());
    assert!(String::from_utf8_lossy(&status.stderr).contains("below 0.95"));
    assert!(!out.exists(), "nothing may be written");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn command_line_writes_both_models() {
    let out = scratch("cli");
    let run = Command::new(env!("CARGO_BIN_EXE_iris-train"))
        .arg("--data")
        .arg(data_path())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for dir in ["v1", "v2"] {
        let written = std::fs::read(out.join(dir).join("model.json")).unwrap();
        let committed = std::fs::read(
            workspace_root()
                .join("models/iris")
                .join(dir)
                .join("model.json"),
        )
        .unwrap();
        assert_eq!(written, committed, "{dir}");
    }
    let bad = Command::new(env!("CARGO_BIN_EXE_iris-train"))
        .arg("--data")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let missing = Command::new(env!("CARGO_BIN_EXE_iris-train"))
        .args(["--data", "/nonexistent/iris.csv", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
    std::fs::remove_dir_all(out).unwrap();
}

#[test]
fn rejects_malformed_csv() {
    let dir = scratch("csv");
    let cases = [
        ("bad header", "a,b,c,d,e\n5.1,3.5,1.4,0.2,Iris setosa\n"),
        ("unknown species", "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,Iris nova\n"),
        ("bad number", "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,x,1.4,0.2,Iris setosa\n"),
        ("missing class", "sepal_length,sepal_width,petal_length,petal_width,species\n5.1,3.5,1.4,0.2,Iris setosa\n"),
    ];
    for (name, text) in cases {
        let path = dir.join("x.csv");
        std::fs::write(&path, text).unwrap();
        assert!(load_csv(&path).is_err(), "{name}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
