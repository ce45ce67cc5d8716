//! The Python virtual environment of `functions/onnx/python`: created in the target directory
//! (`target/venv-sklearn`, ignored by git) from the pinned `requirements.txt`, and re-created
//! when that file changes. The e2e tests call [`ensure`] before they run `train.py` or
//! `conformance.py`; `cargo xtask` can call it the same way.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The directory of the scripts, relative to the workspace root.
pub const SCRIPTS: &str = "functions/onnx/python";

/// Records which `requirements.txt` a venv was made from.
const STAMP: &str = "requirements.sha256";

/// Serialises creation between the threads of one process (tests run in parallel).
static CREATING: Mutex<()> = Mutex::new(());

/// The venv's Python interpreter, once `target_dir/venv-sklearn` holds exactly the packages of
/// `root/functions/onnx/python/requirements.txt` (installed with `python3 -m venv` and `pip`
/// from PyPI when it does not). Fails with pip's output if the installation fails.
pub fn ensure(root: &Path, target_dir: &Path) -> Result<PathBuf> {
    let _guard = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    let requirements = root.join(SCRIPTS).join("requirements.txt");
    let wanted = hex::encode(Sha256::digest(
        std::fs::read(&requirements)
            .with_context(|| format!("reading {}", requirements.display()))?,
    ));
    let venv = target_dir.join("venv-sklearn");
    let python = venv.join("bin/python");
    let stamp = venv.join(STAMP);
    if python.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(wanted.as_str())
    {
        return Ok(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&requirements))?;
    std::fs::write(&stamp, &wanted)?;
    Ok(python)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
