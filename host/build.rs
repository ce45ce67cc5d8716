//! Puts the generic ONNX model module into the binary, for `fnhost new onnx-model` (see
//! `src/new/mod.rs`): `FNHOST_ONNX_MODEL_WASM` names the built `onnx_model.wasm` (`cargo xtask
//! build` sets it to `target/wasm32-wasip2/release/onnx_model.wasm` after building it). A host
//! built without it (a plain `cargo build -p fnhost`) embeds nothing and `fnhost new
//! onnx-model` says how to get one that has it. The module is copied into OUT_DIR so that
//! `include_bytes!` has one fixed path either way.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=FNHOST_ONNX_MODEL_WASM");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("onnx_model.wasm");
    // Only `fnhost new` (feature `new`) embeds it.
    let wanted = std::env::var_os("CARGO_FEATURE_NEW").is_some();
    match std::env::var_os("FNHOST_ONNX_MODEL_WASM").filter(|_| wanted) {
        Some(module) => {
            let module = PathBuf::from(module);
            println!("cargo:rerun-if-changed={}", module.display());
            std::fs::copy(&module, &out).unwrap_or_else(|e| {
                panic!(
                    "FNHOST_ONNX_MODEL_WASM={}: cannot copy it: {e}",
                    module.display()
                )
            });
        }
        None => std::fs::write(&out, []).expect("writing OUT_DIR/onnx_model.wasm"),
    }
}
