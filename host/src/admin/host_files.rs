//! Host paths the admin API may use (`path=` modules, `mount=` directories): only under the
//! admin roots configured at start (default: the manifest's directory), only regular files
//! (modules) or directories (mounts), and modules only up to the upload size cap.
//!
//! A path is first checked lexically (made absolute, `.` and `..` resolved without touching
//! the file system), so a path outside the roots is refused the same way whether it exists or
//! not; then resolved (symlinks) and checked again, so a link inside a root cannot lead out of
//! it. A module is read here, once, after the checks: what is checked is what is loaded.

use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};

/// Why a host path was refused: the rule, for a JSON 403 (or 413, 422).
#[derive(Debug, PartialEq)]
pub enum Refused {
    /// Outside every root, or not the kind of file the parameter needs (→ 403).
    Forbidden(String),
    /// A module larger than the upload cap (→ 413).
    TooLarge(String),
    /// Allowed but unreadable: missing, permissions (→ 422).
    Unreadable(String),
}

#[derive(Debug, Clone)]
pub struct AdminRoots {
    roots: Vec<PathBuf>,
}

/// `path` made absolute with `.` and `..` resolved lexically.
fn lexical(path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

impl AdminRoots {
    /// Roots must exist; they are kept resolved (symlinks followed).
    pub fn new(roots: &[PathBuf]) -> Result<AdminRoots> {
        let roots = roots
            .iter()
            .map(|r| {
                std::fs::canonicalize(r)
                    .with_context(|| format!("admin root {}: cannot resolve it", r.display()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(AdminRoots { roots })
    }

    fn shown(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `path` resolved, or why it may not be used.
    fn resolve(&self, param: &str, path: &Path) -> Result<PathBuf, Refused> {
        let outside = || {
            Refused::Forbidden(format!(
                "{param} {}: only paths under the admin roots may be used ({}; see --admin-root)",
                path.display(),
                self.shown()
            ))
        };
        let lexical = lexical(path);
        if !self.roots.iter().any(|r| lexical.starts_with(r)) {
            return Err(outside());
        }
        let resolved = std::fs::canonicalize(&lexical)
            .map_err(|e| Refused::Unreadable(format!("{param} {}: {e}", path.display())))?;
        if !self.roots.iter().any(|r| resolved.starts_with(r)) {
            return Err(outside());
        }
        Ok(resolved)
    }

    /// A module file's bytes: a regular file under the roots, at most `max_bytes`.
    pub fn read_module(&self, path: &Path, max_bytes: u64) -> Result<(PathBuf, Vec<u8>), Refused> {
        let resolved = self.resolve("path", path)?;
        // Non-blocking, so a FIFO swapped in cannot hang the open; no link may be followed.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
                .open(&resolved)
        }
        .map_err(|e| Refused::Unreadable(format!("path {}: {e}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(|e| Refused::Unreadable(format!("path {}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(Refused::Forbidden(format!(
                "path {}: only regular files may be loaded as modules",
                path.display()
            )));
        }
        if meta.len() > max_bytes {
            return Err(Refused::TooLarge(format!(
                "path {}: {} bytes exceeds the module size limit of {max_bytes} bytes",
                path.display(),
                meta.len()
            )));
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Refused::Unreadable(format!("path {}: {e}", path.display())))?;
        if bytes.len() as u64 > max_bytes {
            return Err(Refused::TooLarge(format!(
                "path {}: exceeds the module size limit of {max_bytes} bytes",
                path.display()
            )));
        }
        Ok((resolved, bytes))
    }

    /// A directory to grant: under the roots.
    pub fn directory(&self, path: &Path) -> Result<PathBuf, Refused> {
        let resolved = self.resolve("mount", path)?;
        if !resolved.is_dir() {
            return Err(Refused::Forbidden(format!(
                "mount {}: only directories may be mounted",
                path.display()
            )));
        }
        Ok(resolved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_and_directories_under_the_roots() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("m.wasm"), b"module").unwrap();
        std::fs::write(outside.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link"))
            .unwrap();
        std::fs::create_dir(root.path().join("models")).unwrap();
        let roots = AdminRoots::new(&[root.path().to_path_buf()]).unwrap();

        let (_, bytes) = roots.read_module(&root.path().join("m.wasm"), 100).unwrap();
        assert_eq!(bytes, b"module");
        fn forbidden<T>(r: Result<T, Refused>) -> bool {
            matches!(r, Err(Refused::Forbidden(_)))
        }
        // Outside: the same answer whether the file exists or not.
        assert!(forbidden(
            roots.read_module(&outside.path().join("secret"), 100)
        ));
        assert!(forbidden(
            roots.read_module(&outside.path().join("nothing"), 100)
        ));
        assert!(forbidden(
            roots.read_module(
                &root
                    .path()
                    .join("../")
                    .join(outside.path().file_name().unwrap())
                    .join("secret"),
                100
            )
        ));
        assert!(forbidden(
            roots.read_module(Path::new("/proc/self/environ"), 100)
        ));
        // A link that leads out, a directory, a device, a FIFO (which must not block).
        let fifo = root.path().join("fifo");
        assert_eq!(
            unsafe {
                libc::mkfifo(
                    std::ffi::CString::new(fifo.to_str().unwrap())
                        .unwrap()
                        .as_ptr(),
                    0o600,
                )
            },
            0
        );
        assert!(forbidden(roots.read_module(&fifo, 100)));
        assert!(forbidden(roots.read_module(&root.path().join("link"), 100)));
        assert!(forbidden(
            roots.read_module(&root.path().join("models"), 100)
        ));
        let dev = AdminRoots::new(&[PathBuf::from("/dev")]).unwrap();
        assert!(forbidden(dev.read_module(Path::new("/dev/zero"), 100)));
        assert!(matches!(
            roots.read_module(&root.path().join("m.wasm"), 3),
            Err(Refused::TooLarge(_))
        ));
        assert!(matches!(
            roots.read_module(&root.path().join("missing.wasm"), 100),
            Err(Refused::Unreadable(_))
        ));
        assert!(roots.directory(&root.path().join("models")).is_ok());
        assert!(forbidden(roots.directory(Path::new("/"))));
        assert!(forbidden(roots.directory(&root.path().join("m.wasm"))));
    }
}
