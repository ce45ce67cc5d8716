//! The per-instance model cache against real files: loaded once, reloaded when either file
//! changes, a pair whose digests disagree refused, a missing directory named.

use std::path::{Path, PathBuf};

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

#[test]
fn loads_once_and_again_when_a_file_changes() {
    let dir = temp_copy("reload");
    let mut cache = ModelCache::new();
    let first = cache.lookup(&dir);
    let model = first.model.expect("the committed model loads");
    assert_eq!(
        (model.name.as_str(), model.version.as_str()),
        ("iris-logistic-regression", "1")
    );
    assert!(first.loaded_in.is_some());
    assert!(
        cache.lookup(&dir).loaded_in.is_none(),
        "unchanged files: cached"
    );

    let json = std::fs::read_to_string(dir.join("model.json")).unwrap();
    std::fs::write(
        dir.join("model.json"),
        json.replacen("\"version\": \"1\"", "\"version\": \"2\"", 1),
    )
    .unwrap();
    let again = cache.lookup(&dir);
    assert!(again.loaded_in.is_some());
    assert_eq!(again.model.unwrap().version, "2");

    let onnx = std::fs::read(dir.join("model.onnx")).unwrap();
    std::fs::write(dir.join("model.onnx"), &onnx[..onnx.len() - 1]).unwrap();
    match cache.lookup(&dir).model {
        Err(ModelError::Mismatch { expected, found }) => assert_ne!(expected, found),
        other => panic!("a changed model.onnx must not be served: {other:?}"),
    }
    std::fs::write(dir.join("model.onnx"), &onnx).unwrap();
    assert!(cache.lookup(&dir).model.is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn without_metadata_the_graph_names_the_model() {
    let dir = temp_copy("bare");
    std::fs::remove_file(dir.join("model.json")).unwrap();
    let model = ModelCache::new().lookup(&dir).model.unwrap();
    assert_eq!(model.name, "iris-logistic-regression");
    assert_eq!(model.version, model.sha256[..12]);
    let table = model.table.as_ref().unwrap();
    assert!(!table.named);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_directory_is_named() {
    let lookup = ModelCache::new().lookup(Path::new("/nonexistent/model/dir"));
    match lookup.model {
        Err(ModelError::Missing(m)) => {
            assert!(m.contains("/nonexistent/model/dir/model.onnx"), "{m}")
        }
        other => panic!("{other:?}"),
    }
}
