//! File-system helpers: atomic writes for the caches (compiled modules, downloaded sources),
//! and private files for secrets the host keeps in its state directory (the admin token, the
//! compiled cache's key).

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Writes to a unique temporary name, then renames: readers never see a partial file, and two
/// writers of the same entry (two components with the same module) never collide.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!(
        "tmp{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A secret kept in a file only this user can read: the existing one, checked (a regular
/// file, not a symlink, owned by this user, not readable by group or others), or a new one
/// from `make`, created with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600. Returns the secret
/// and whether it was just created.
pub fn private_file(
    path: &Path,
    what: &str,
    make: impl FnOnce() -> String,
) -> Result<(String, bool)> {
    if let Some(secret) = read_private(path, what)? {
        return Ok((secret, false));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the directory of {}", path.display()))?;
    }
    let secret = make();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("creating the {what} file {}", path.display()))?;
    f.write_all(secret.as_bytes())?;
    Ok((secret, true))
}

fn read_private(path: &Path, what: &str) -> Result<Option<String>> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!(
            "{what} file {}: {e} (it must be a regular file, not a symlink)",
            path.display()
        ),
    };
    let meta = file.metadata()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.is_file() {
        bail!("{what} file {}: not a regular file", path.display());
    }
    if meta.uid() != me {
        bail!(
            "{what} file {} is owned by uid {}, not by this user (uid {me}): remove it",
            path.display(),
            meta.uid()
        );
    }
    if meta.mode() & 0o077 != 0 {
        bail!(
            "{what} file {} is readable by group or others (mode {:o}): run `chmod 600` on it",
            path.display(),
            meta.mode() & 0o777
        );
    }
    let mut secret = String::new();
    file.take(4096).read_to_string(&mut secret)?;
    Ok(Some(secret.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_are_created_private_and_reused_only_when_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let (first, created) = private_file(&path, "test secret", || "s3cret".into()).unwrap();
        assert!(created);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let (again, created) = private_file(&path, "test secret", || unreachable!()).unwrap();
        assert_eq!((again.as_str(), created), (first.as_str(), false));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = private_file(&path, "test secret", || "x".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("readable by group or others"), "{err}");

        std::fs::remove_file(&path).unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "planted").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = private_file(&path, "test secret", || "x".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a symlink"), "{err}");
    }
}
