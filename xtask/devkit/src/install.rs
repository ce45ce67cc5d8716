//! Installing what a workflow needs, only when it is missing: Debian packages with apt-get
//! (this project's machines are Debian, and run these as root) and Python packages with pip.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};

use crate::cmd::{run, succeeds};

/// `tool` on PATH, or in an sbin directory (dockerd lives in /usr/sbin, which a non-login
/// PATH may lack).
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// `tool`'s path, installing the Debian `packages` that provide it when it is not found.
pub fn ensure_tool(tool: &str, packages: &[&str]) -> Result<PathBuf> {
    if let Some(p) = find_tool(tool) {
        return Ok(p);
    }
    apt_install(packages)?;
    find_tool(tool)
        .with_context(|| format!("`{tool}` is still not found after installing {packages:?}"))
}

/// Installs those of the Debian `packages` that are not installed yet (`apt-get update` first).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !deb_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(Command::new("apt-get").arg("update"))?;
    run(Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "--no-install-recommends"])
        .args(&missing))
    .with_context(|| format!("installing {missing:?}"))
}

fn deb_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["--show", "--showformat=${Status}", package])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).ends_with("install ok installed"))
}

/// Installs `file`'s Debian `packages` when the file is missing.
pub fn ensure_file(file: &Path, packages: &[&str]) -> Result<()> {
    if !file.is_file() {
        apt_install(packages)?;
    }
    ensure!(
        file.is_file(),
        "{} is still missing after installing {packages:?}",
        file.display()
    );
    Ok(())
}

/// A Python package and the module that shows it is installed.
#[derive(Clone, Copy, Debug)]
pub struct PipPackage {
    /// The name pip installs (`pyyaml`).
    pub package: &'static str,
    /// The module `python3 -c "import …"` must find (`yaml`).
    pub module: &'static str,
}

impl PipPackage {
    /// A package whose module has its name, with `-` as `_` (`kubernetes-validate`).
    pub const fn named(package: &'static str) -> PipPackage {
        PipPackage {
            package,
            module: package,
        }
    }

    fn importable(&self) -> bool {
        let module = self.module.replace('-', "_");
        succeeds(Command::new("python3").args(["-c", &format!("import {module}")]))
    }
}

/// `pip install`s those of `packages` whose module cannot be imported yet.
pub fn pip_install(packages: &[PipPackage]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|p| !p.importable())
        .map(|p| p.package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    run(pip_install_with(Path::new("python3")).args(&missing))
}

/// `PYTHON -m pip install --quiet --disable-pip-version-check`, arguments to follow.
pub fn pip_install_with(python: &Path) -> Command {
    let mut c = Command::new(python);
    c.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_packages_and_tools_are_found_without_installing() {
        // Both exist on every Debian system: nothing is installed, so nothing runs as root.
        assert!(deb_installed("dpkg"));
        assert!(!deb_installed("no-such-package-fnhost"));
        assert!(apt_install(&["dpkg"]).is_ok());
        assert_eq!(ensure_tool("sh", &[]).unwrap(), find_tool("sh").unwrap());
    }
}
