//! A file's stamp — identity, size and times — and when a stat of a model file may stand in
//! for reading it again: one rule, used by every component and native server that keeps a
//! model file's contents across requests (iris-core's `model_file`, onnx-core's `cache`).
//!
//! The contract is that replacing a model file changes the next answer. Reading and comparing
//! the whole file on every request keeps it trivially, but with a reused instance the read
//! (open, stats, reads, close, each through WASI) was a fifth of iris's server CPU per request.
//! A stat is cheaper, and it proves the file unchanged once its times are *settled* (git's rule
//! for "racily clean" index entries): file systems stamp a change with a coarse clock (the
//! kernel's tick, up to seconds on some), so a change made just after a read can carry the very
//! time the read saw; but when the file's times are more than [`TIMESTAMP_SLACK`] older than
//! the moment of the stat, a later change gets a later modification time. Until then a server
//! reads the file as before. Identity (device and inode) catches a file moved over it (`mv`, a
//! Kubernetes ConfigMap's symlink swap) whatever its times.
//!
//! What a stat cannot see, as with rsync's quick check and Apache's `ETag`, is a rewrite in
//! place that keeps the size and sets the modification time back to the nanosecond it had (the
//! status-change time would show it, but WASI as wasmtime 48 implements it reports the birth
//! time under that name). Stamps are taken by [`wasi`] in the components and by [`unix`] in
//! native code; both decide with [`FileStamp::settled`].

use std::time::Duration;

#[cfg(unix)]
pub mod unix;
#[cfg(feature = "wasi")]
pub mod wasi;

/// How far a file system's timestamps may trail the clock (coarse clocks, FAT's 2 s).
pub const TIMESTAMP_SLACK: Duration = Duration::from_secs(2);

/// What a stat of a file says, enough to notice any change to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Which file: device and inode, or a hash of them (WASI's `metadata-hash`).
    pub identity: (u64, u64),
    pub size: u64,
    /// Last data modification, since the Unix epoch (`None`: the file system keeps none).
    pub modified: Option<Duration>,
    /// Last status change, since the Unix epoch (`None`: not available). wasmtime 48's WASI
    /// puts the birth time here; either way, when present it must be settled too.
    pub changed: Option<Duration>,
}

impl FileStamp {
    /// Whether a change after a stat taken at `now` (since the Unix epoch) is certain to give
    /// a different modification time: it, and the other time if known, are more than
    /// [`TIMESTAMP_SLACK`] old.
    pub fn settled(&self, now: Duration) -> bool {
        let old = |t: Duration| t.saturating_add(TIMESTAMP_SLACK) < now;
        self.modified.is_some_and(old) && self.changed.is_none_or(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn settled_needs_an_old_modification_time_and_an_old_other_time_if_known() {
        let old = FileStamp {
            identity: (1, 2),
            size: 1,
            modified: Some(secs(100)),
            changed: Some(secs(100)),
        };
        assert!(old.settled(secs(103)));
        assert!(!old.settled(secs(102)), "exactly the slack is not enough");
        let recent_other = FileStamp {
            changed: Some(secs(102)),
            ..old
        };
        assert!(!recent_other.settled(secs(103)));
        assert!(FileStamp {
            changed: None,
            ..old
        }
        .settled(secs(103)));
        assert!(!FileStamp {
            modified: None,
            ..old
        }
        .settled(secs(103)));
    }
}
