//! The per-instance model cache against real files: loaded once, reloaded when either file
//! changes, a pair whose digests disagree refused, a missing directory named; with stamps given
//! by the test, when a settled stat stands in for reading `model.json`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fn_file_stamp::FileStamp;
use onnx_core::{ModelCache, ModelError};

/// The scikit-learn iris model committed for the iris route.
fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../models/iris/onnx")
}

fn temp_copy(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("onnx-core-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.onnx", "model.json"] {
        std::fs::copy(committed().join(f), dir.join(f)).unwrap();
    }
    dir
}

/// Writes the committed `model.json` into `dir` with its version set to `version`.
fn write_version(dir: &Path, version: &str) {
    let json = std::fs::read_to_string(committed().join("model.json")).unwrap();
    let set = format!("\"version\": \"{version}\"");
    std::fs::write(
        dir.join("model.json"),
        json.replacen("\"version\": \"1\"", &set, 1),
    )
    .unwrap();
}

#[test]
fn loads_once_and_again_when_a_file_changes() {
    let dir = temp_copy("reload");
    let mut cache = ModelCache::new();
    let first = cache.lookup_on_unix(&dir);
    let model = first.model.expect("the committed model loads");
    assert_eq!(
        (model.name.as_str(), model.version.as_str()),
        ("iris-logistic-regression", "1")
    );
    assert!(first.loaded_in.is_some());
    assert!(
        cache.lookup_on_unix(&dir).loaded_in.is_none(),
        "unchanged files: cached"
    );

    write_version(&dir, "2");
    let again = cache.lookup_on_unix(&dir);
    assert!(again.loaded_in.is_some());
    assert_eq!(again.model.unwrap().version, "2");

    let onnx = std::fs::read(dir.join("model.onnx")).unwrap();
    std::fs::write(dir.join("model.onnx"), &onnx[..onnx.len() - 1]).unwrap();
    match cache.lookup_on_unix(&dir).model {
        Err(ModelError::Mismatch { expected, found }) => assert_ne!(expected, found),
        other => panic!("a changed model.onnx must not be served: {other:?}"),
    }
    std::fs::write(dir.join("model.onnx"), &onnx).unwrap();
    assert!(cache.lookup_on_unix(&dir).model.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_metadata_the_graph_names_the_model() {
    let dir = temp_copy("bare");
    std::fs::remove_file(dir.join("model.json")).unwrap();
    let model = ModelCache::new().lookup_on_unix(&dir).model.unwrap();
    assert_eq!(model.name, "iris-logistic-regression");
    assert_eq!(model.version, model.sha256[..12]);
    let table = model.table.as_ref().unwrap();
    assert!(!table.named);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_directory_is_named() {
    let lookup = ModelCache::new().lookup_on_unix(Path::new("/nonexistent/model/dir"));
    match lookup.model {
        Err(ModelError::Missing(m)) => {
            assert!(m.contains("/nonexistent/model/dir/model.onnx"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A stamp whose times are 100 s after the epoch.
fn stamp(identity: u64) -> FileStamp {
    FileStamp {
        identity: (1, identity),
        size: 10,
        modified: Some(secs(100)),
        changed: Some(secs(100)),
    }
}

/// Stamps the test chooses: `model.json` (when `Some`) and `model.onnx`.
fn stamps(metadata: Option<FileStamp>, onnx: FileStamp) -> impl Fn(&str) -> io::Result<FileStamp> {
    move |name| match name {
        "model.json" => metadata.ok_or_else(|| io::ErrorKind::NotFound.into()),
        "model.onnx" => Ok(onnx),
        other => panic!("stamp of {other}"),
    }
}

fn version(cache: &mut ModelCache, dir: &Path, now: u64, metadata: FileStamp) -> String {
    match cache
        .lookup(dir, secs(now), stamps(Some(metadata), stamp(2)))
        .model
    {
        Ok(model) => model.version.clone(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn settled_unchanged_stamps_stand_in_for_reading_model_json() {
    let dir = temp_copy("settled");
    let mut cache = ModelCache::new();
    assert_eq!(version(&mut cache, &dir, 200, stamp(1)), "1");
    // Changed on disk, not in the stamps: the settled stamps are all that is looked at.
    write_version(&dir, "2");
    assert_eq!(version(&mut cache, &dir, 201, stamp(1)), "1");
    // A stamp that differs in anything is a reason to read.
    let moved = stamp(3);
    assert_eq!(version(&mut cache, &dir, 202, moved), "2");
    let rewritten = FileStamp {
        modified: Some(secs(150)),
        ..moved
    };
    write_version(&dir, "1");
    assert_eq!(version(&mut cache, &dir, 203, rewritten), "1");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stamps_within_the_slack_read_model_json_every_time() {
    let dir = temp_copy("unsettled");
    let mut cache = ModelCache::new();
    // Stamped at 100 s, looked at 101 s: a change at 101.5 s could carry the same stamp.
    assert_eq!(version(&mut cache, &dir, 101, stamp(1)), "1");
    write_version(&dir, "2");
    assert_eq!(version(&mut cache, &dir, 101, stamp(1)), "2");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_graph_moved_over_at_the_same_size_and_times_is_loaded_again() {
    let dir = temp_copy("moved");
    std::fs::remove_file(dir.join("model.json")).unwrap();
    let mut cache = ModelCache::new();
    let lookup = |cache: &mut ModelCache, onnx: FileStamp| {
        cache.lookup(&dir, secs(200), stamps(None, onnx)).loaded_in
    };
    assert!(
        lookup(&mut cache, stamp(2)).is_some(),
        "the first lookup loads"
    );
    assert!(lookup(&mut cache, stamp(2)).is_none(), "settled, unchanged");
    assert!(
        lookup(&mut cache, stamp(4)).is_some(),
        "another file (identity) at the same size and times"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failed_stat_is_named() {
    let dir = temp_copy("stat-error");
    let lookup = ModelCache::new().lookup(&dir, secs(200), |name| {
        Err(io::Error::other(format!("{name}: permission denied")))
    });
    match lookup.model {
        Err(ModelError::Missing(m)) => assert!(m.contains("model.json: permission denied"), "{m}"),
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
