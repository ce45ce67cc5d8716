//! The admin bearer token: from `FNHOST_ADMIN_TOKEN` / `--admin-token`, or a file in the state
//! directory that only this user can read (`fsutil::private_file`: created with `O_EXCL |
//! O_NOFOLLOW` and mode 0600; an existing file readable by group or others, owned by someone
//! else, or a symlink stops start-up with what to fix).

use std::path::Path;

use anyhow::{bail, Result};

use crate::fsutil::private_file;

const MIN_LEN: usize = 16;

/// Where the token came from, for the start-up message.
pub enum Origin {
    Given,
    File,
    NewFile,
}

pub fn admin_token(given: Option<&str>, state_dir: &Path) -> Result<(String, Origin)> {
    if let Some(t) = given {
        if t.trim().len() < MIN_LEN {
            bail!("FNHOST_ADMIN_TOKEN must be at least {MIN_LEN} characters");
        }
        return Ok((t.trim().to_string(), Origin::Given));
    }
    let path = state_dir.join("admin-token");
    let (token, created) = private_file(&path, "admin token", || {
        hex::encode(rand::random::<[u8; 32]>())
    })?;
    if token.len() < MIN_LEN {
        bail!(
            "admin token file {}: the token is shorter than {MIN_LEN} characters",
            path.display()
        );
    }
    Ok((
        token,
        if created {
            Origin::NewFile
        } else {
            Origin::File
        },
    ))
}
