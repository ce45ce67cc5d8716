//! File-system helpers shared by the caches (compiled modules, downloaded sources).

use std::path::Path;

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
