//! Where the workspace is, for code that runs from any directory: this crate lives at
//! `xtask/devkit/` inside it, and cargo builds into its `target/` unless told otherwise.

use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("xtask/devkit is two levels below the workspace root")
        .to_path_buf()
}

/// `CARGO_TARGET_DIR` (relative to the workspace root when relative) or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root().join(d),
        _ => root().join("target"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_root_is_the_workspace_with_this_crate_in_it() {
        let root = super::root();
        assert!(root.join("xtask/devkit/Cargo.toml").is_file());
        assert!(root.join("Cargo.lock").is_file());
    }
}
