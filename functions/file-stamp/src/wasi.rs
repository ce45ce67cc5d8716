//! Stamps taken through WASI 0.2's filesystem, in the wasm components.
//!
//! A stat through a preopened directory descriptor rather than a path: without following
//! symlinks a stat of a plain name is one `statx` in wasmtime's WASI; following them it is
//! `openat2`, `statx` and `close` (a sandboxed path walk), which `std::fs::metadata` pays every
//! time. [`stamp_at`] follows only when the name is a link (a Kubernetes ConfigMap mounts one
//! per file).

use std::io;
use std::time::Duration;

use wasip2::clocks::wall_clock::{self, Datetime};
use wasip2::filesystem::preopens;
use wasip2::filesystem::types::{Descriptor, DescriptorType, ErrorCode, PathFlags};

use crate::FileStamp;

fn duration(t: Datetime) -> Duration {
    Duration::new(t.seconds, t.nanoseconds)
}

/// The time now, since the Unix epoch (taken before a stat, as [`FileStamp::settled`] wants).
pub fn now() -> Duration {
    duration(wall_clock::now())
}

/// The directory the host grants at `guest_path` (a manifest's `files` entry), if any. Looking
/// it up lists every preopen: do it once per instance.
pub fn preopen(guest_path: &str) -> Option<Descriptor> {
    preopens::get_directories()
        .into_iter()
        .find_map(|(dir, path)| (path == guest_path).then_some(dir))
}

/// The stamp of `name` in `dir`, following it if it is a symlink. No such file is
/// [`io::ErrorKind::NotFound`].
pub fn stamp_at(dir: &Descriptor, name: &str) -> io::Result<FileStamp> {
    stat_at(dir, name).map_err(|e| match e {
        ErrorCode::NoEntry => io::Error::new(io::ErrorKind::NotFound, "no such file"),
        e => io::Error::other(e.to_string()),
    })
}

fn stat_at(dir: &Descriptor, name: &str) -> Result<FileStamp, ErrorCode> {
    let mut flags = PathFlags::empty();
    let mut stat = dir.stat_at(flags, name)?;
    if stat.type_ == DescriptorType::SymbolicLink {
        flags = PathFlags::SYMLINK_FOLLOW;
        stat = dir.stat_at(flags, name)?;
    }
    let identity = dir.metadata_hash_at(flags, name)?;
    Ok(FileStamp {
        identity: (identity.upper, identity.lower),
        size: stat.size,
        modified: stat.data_modification_timestamp.map(duration),
        changed: stat.status_change_timestamp.map(duration),
    })
}
