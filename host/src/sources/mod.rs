//! Module bytes from a version's `source`: a local path, or a download verified by digest.
//!
//! Each kind of source is one module (`url.rs` for Spin's `{ url, digest }`). Downloads are
//! verified against their sha256 and cached by digest in `<cache>/sources/`, so a restart or a
//! second replica on the same volume does not download again. A digest mismatch, an HTTP error
//! or a timeout means the version is not loaded; the caller keeps serving what it had.

mod url;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::fsutil::write_atomically;
use crate::spec::{Sha256, Source};

pub struct Sources {
    dir: PathBuf,
}

impl Sources {
    pub fn new(cache_dir: &Path) -> Result<Sources> {
        let dir = cache_dir.join("sources");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Sources { dir })
    }

    /// The module's bytes, read from disk or fetched (and verified) from its URL.
    pub async fn read(&self, source: &Source) -> Result<Vec<u8>> {
        match source {
            Source::Path(path) => tokio::fs::read(path)
                .await
                .with_context(|| format!("reading module {}", path.display())),
            Source::Uploaded { digest } => {
                bail!("module sha256:{digest} was uploaded through the admin API; upload it again")
            }
            Source::Url { url, digest } => self
                .fetch(digest, || url::download(url))
                .await
                .with_context(|| format!("downloading {url}")),
        }
    }

    /// The bytes named by `digest`: from the cache, or from `download` (verified, then cached).
    async fn fetch<F, Fut>(&self, digest: &Sha256, download: F) -> Result<Vec<u8>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>>>,
    {
        let cached = self.dir.join(format!("{digest}.wasm"));
        if let Ok(bytes) = tokio::fs::read(&cached).await {
            if Sha256::of(&bytes) == *digest {
                return Ok(bytes);
            }
            tracing::warn!(file = %cached.display(), "cached download does not match its digest; fetching again");
        }
        let bytes = download().await?;
        let got = Sha256::of(&bytes);
        if got != *digest {
            bail!(
                "digest mismatch: the manifest says sha256:{digest}, the download is sha256:{got}"
            );
        }
        let data = bytes.clone();
        tokio::task::spawn_blocking(move || write_atomically(&cached, &data)).await??;
        tracing::info!(sha256 = %digest.short(), bytes = bytes.len(), "downloaded module");
        Ok(bytes)
    }
}
