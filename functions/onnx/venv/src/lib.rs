//! The Python virtual environment of `functions/onnx/python`: created in the target directory
//! (`target/venv-sklearn`, ignored by git) from the pinned `requirements.txt`, and re-created
//! when that file changes. The e2e tests call [`ensure`] before they run `train.py` or
//! `conformance.py`; `cargo xtask` calls it the same way. Other environments (the model
//! benchmark's MLServer) come from `devkit::python::ensure_venv` directly.

use std::path::{Path, PathBuf};

use anyhow::Result;

/// The directory of the scripts, relative to the workspace root.
pub const SCRIPTS: &str = "functions/onnx/python";

/// The venv's Python interpreter, once `target_dir/venv-sklearn` holds exactly the packages of
/// `root/functions/onnx/python/requirements.txt` (installed with `python3 -m venv` and `pip`
/// from PyPI when it does not). Fails with pip's output if the installation fails.
pub fn ensure(root: &Path, target_dir: &Path) -> Result<PathBuf> {
    devkit::python::ensure_venv(
        &root.join(SCRIPTS).join("requirements.txt"),
        &target_dir.join("venv-sklearn"),
    )
}
