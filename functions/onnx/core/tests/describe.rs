//! `describe`: what `fnhost new onnx-model` reads from a model file, checked on the
//! scikit-learn logistic regression the repository ships (`models/iris/onnx/model.onnx`).

use onnx_core::describe::{describe, Role};
use onnx_core::{Model, ModelError};

fn shipped() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../models/iris/onnx/model.onnx"
    ))
    .unwrap()
}

#[test]
fn a_classifier_has_its_label_probabilities_and_classes_from_the_graph() {
    let onnx = shipped();
    let d = describe(&onnx).unwrap();
    assert_eq!(
        d.role,
        Role::Classifier {
            label: "label".into(),
            probabilities: Some("probabilities".into()),
        }
    );
    assert_eq!(d.classes, Some(vec!["0".into(), "1".into(), "2".into()]));
    assert_eq!(d.inputs.len(), 1);
    assert_eq!(d.inputs[0].shape, vec![None, Some(4)]);
}

#[test]
fn the_derived_metadata_serves_the_model() {
    let onnx = shipped();
    let metadata = describe(&onnx).unwrap().metadata(&onnx, "flowers", "1");
    let json = serde_json::to_vec(&metadata).unwrap();
    let model = Model::load(&onnx, Some(&json)).unwrap();
    assert_eq!(
        (model.name.as_str(), model.version.as_str()),
        ("flowers", "1")
    );
    let table = model.table.as_ref().unwrap();
    assert_eq!(table.classes.as_deref().map(<[String]>::len), Some(3));
    assert!(!table.named, "the graph names no features");
}

#[test]
fn a_file_that_is_not_onnx_is_refused() {
    let err = describe(b"{\"not\": \"a model\"}").unwrap_err();
    assert!(matches!(err, ModelError::Corrupt(_)), "{err:?}");
}
