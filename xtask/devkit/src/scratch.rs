//! Temporary directories (tempfile's, removed on drop) with the few file operations the tests
//! and workflows do in them.

use std::path::{Path, PathBuf};

/// A directory under the system temp dir, named `fnhost-<tag>-…`, removed when dropped unless
/// [`keep`](TempDir::keep) is called.
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir(
            tempfile::Builder::new()
                .prefix(&format!("fnhost-{tag}-"))
                .tempdir()
                .expect("creating a temporary directory"),
        )
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.0.path().join(rel)
    }

    /// Writes a file (creating parent directories) and returns its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// Copies a file in (atomically: temp name, then rename, as a deployment tool would).
    pub fn copy_in(&self, from: &Path, rel: &str) -> PathBuf {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let tmp = p.with_extension("partial");
        std::fs::copy(from, &tmp).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        std::fs::rename(&tmp, &p).unwrap();
        p
    }

    /// Leaves the directory on disk (to look at after a failure) and returns its path.
    pub fn keep(self) -> PathBuf {
        self.0.keep()
    }
}
