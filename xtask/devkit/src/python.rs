//! Python for the workflows and tests: virtual environments made from a pinned
//! `requirements.txt` (in the target directory, ignored by git; re-created when the file
//! changes, offline once installed), and Python HTTP components built from source with
//! componentize-py and Spin's Python SDK.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

use anyhow::{Context, Result};

use crate::cmd::run;
use crate::install::pip_install_with;
use crate::workspace::{root, target_dir};

/// The venv's copy of the `requirements.txt` it was made from.
const STAMP: &str = "requirements.txt";

/// Serialises creation between the threads of one process (tests run in parallel).
static CREATING: Mutex<()> = Mutex::new(());

/// The venv's Python interpreter, once `venv` holds exactly the packages of `requirements`
/// (installed with `python3 -m venv` and `pip` when it does not).
pub fn ensure_venv(requirements: &Path, venv: &Path) -> Result<PathBuf> {
    let _guard = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    let wanted = std::fs::read(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let python = venv.join("bin/python");
    let stamp = venv.join(STAMP);
    if python.is_file() && std::fs::read(&stamp).ok().as_deref() == Some(wanted.as_slice()) {
        return Ok(python);
    }
    if venv.exists() {
        std::fs::remove_dir_all(venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    run(Command::new("python3").arg("-m").arg("venv").arg(venv))?;
    run(pip_install_with(&python).arg("-r").arg(requirements))?;
    std::fs::write(&stamp, &wanted)?;
    Ok(python)
}

/// The pinned Spin Python SDK and componentize-py, relative to the workspace root.
pub const SPIN_SDK_REQUIREMENTS: &str = "functions/pi-python/requirements.txt";

/// The virtual environment with Spin's Python SDK (`target/venv-spin-python`): installed from
/// PyPI the first time, offline afterwards. Only Spin-SDK builds use it: componentize-py in a
/// venv holding spin-sdk builds every component against Spin's WIT.
pub fn spin_sdk_venv() -> Result<PathBuf> {
    let venv = target_dir().join("venv-spin-python");
    ensure_venv(&root().join(SPIN_SDK_REQUIREMENTS), &venv)?;
    Ok(venv)
}

/// The environment `. VENV/bin/activate` gives a command: `VIRTUAL_ENV`, and the venv's `bin`
/// first on `PATH`. componentize-py reads the SDK's WIT through it (outside an activated venv it
/// fails with "failed to read path for WIT"), so every Spin-SDK build runs with it.
pub fn activated(venv: &Path) -> Result<Vec<(OsString, OsString)>> {
    let bin = venv.join("bin");
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    Ok(vec![
        ("VIRTUAL_ENV".into(), venv.as_os_str().to_owned()),
        ("PATH".into(), path),
    ])
}

/// Spin's Python SDK world: an HTTP component (`wasi:http/handler@0.3.0`) with Spin's
/// platform imports.
pub const SPIN_HTTP_WORLD: &str = "spin:up/http-trigger@4.1.0";

/// A Python HTTP component to build: the directory of its sources, its module (`app` for
/// `app.py`, which defines `HttpHandler`), and the venv holding componentize-py and the SDK.
pub struct PythonComponent<'a> {
    pub source_dir: &'a Path,
    pub module: &'a str,
    pub venv: &'a Path,
}

impl PythonComponent<'_> {
    /// Builds the component into `out` with componentize-py for Spin's world, unless `out` is
    /// newer than every `.py` file in the source directory and the venv, in the [`activated`]
    /// venv.
    pub fn build(&self, out: &Path) -> Result<()> {
        if is_newer_than_sources(out, self.source_dir, self.venv)? {
            return Ok(());
        }
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        run(Command::new(self.venv.join("bin/componentize-py"))
            .current_dir(self.source_dir)
            .envs(activated(self.venv)?)
            .args(["-w", SPIN_HTTP_WORLD, "componentize", self.module, "-o"])
            .arg(out))
    }
}

fn modified(path: &Path) -> Result<SystemTime> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .modified()?)
}

fn is_newer_than_sources(out: &Path, source_dir: &Path, venv: &Path) -> Result<bool> {
    let Ok(built) = modified(out) else {
        return Ok(false);
    };
    let mut inputs = vec![venv.join(STAMP)];
    for entry in std::fs::read_dir(source_dir)
        .with_context(|| format!("reading {}", source_dir.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "py") {
            inputs.push(path);
        }
    }
    for input in inputs {
        if modified(&input)? >= built {
            return Ok(false);
        }
    }
    Ok(true)
}
