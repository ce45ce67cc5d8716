//! Stamps taken with `std` on Unix: the native control and native tests of the cores.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::FileStamp;

/// The time now, since the Unix epoch (taken before a stat, as [`FileStamp::settled`] wants).
pub fn now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The stamp of the file at `path`, following symlinks.
pub fn stamp(path: &Path) -> io::Result<FileStamp> {
    let meta = std::fs::metadata(path)?;
    let since_epoch = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).ok();
    Ok(FileStamp {
        identity: (meta.dev(), meta.ino()),
        size: meta.len(),
        modified: meta.modified().ok().and_then(since_epoch),
        changed: u64::try_from(meta.ctime())
            .ok()
            .map(|s| Duration::new(s, meta.ctime_nsec() as u32)),
    })
}
