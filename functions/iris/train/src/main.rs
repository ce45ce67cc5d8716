//! `iris-train --data <iris.csv> --out <dir>`: trains both iris models and
//! writes `<dir>/v1/model.json` (logistic regression) and `<dir>/v2/model.json`
//! (k-nearest neighbours); exits non-zero without writing if either model's
//! cross-validated accuracy is below 0.95.

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: iris-train --data <iris.csv> --out <models/iris>";

fn parse_args() -> Result<(PathBuf, PathBuf), String> {
    let mut data = None;
    let mut out = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        let slot = match arg.to_str() {
            Some("--data") => &mut data,
            Some("--out") => &mut out,
            Some("-h" | "--help") => return Err(USAGE.to_string()),
            _ => return Err(format!("unexpected argument {arg:?}\n{USAGE}")),
        };
        let value = args
            .next()
            .ok_or_else(|| format!("{arg:?} needs a value\n{USAGE}"))?;
        if slot.replace(PathBuf::from(value)).is_some() {
            return Err(format!("{arg:?} given twice\n{USAGE}"));
        }
    }
    match (data, out) {
        (Some(d), Some(o)) => Ok((d, o)),
        _ => Err(format!("both --data and --out are required\n{USAGE}")),
    }
}

fn run() -> Result<(), String> {
    let (data_path, out) = parse_args()?;
    let data = iris_train::load_csv(&data_path)?;
    eprintln!(
        "iris-train: {} rows from {}",
        data.rows.len(),
        data.trained_on
    );
    let models = iris_train::train(&data)?;
    for t in [&models.v1.artifact, &models.v2.artifact] {
        eprintln!(
            "iris-train: {}@{} ({}): {}-fold CV accuracy {:.4}",
            t.name, t.version, t.kind, t.cv_folds, t.cv_accuracy
        );
    }
    for path in iris_train::write_models(&models, &out)? {
        eprintln!("iris-train: wrote {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iris-train: error: {e}");
            ExitCode::FAILURE
        }
    }
}
