//! Module bytes from a version's `source`: a local path, a download or a registry pull, each
//! verified by digest.
//!
//! Each kind of source is one module (`url.rs` for Spin's `{ url, digest }`, `oci.rs` for Wasm
//! OCI artifacts in a registry). Remote bytes are verified against their sha256 and cached by
//! digest in `<cache>/sources/`, so a restart or a second replica on the same volume does not
//! fetch them again. Reading a source answers the bytes and the source that names exactly
//! them: a registry tag comes back pinned to the manifest and module digests it resolved to, so
//! a loaded version never changes when the tag moves. A digest mismatch, a refused or
//! unreachable server, a timeout or a module over `max_module_size` means the version is not
//! loaded; the caller keeps serving what it had.

pub mod commands;
mod oci;
mod url;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use oci::{pull as pull_artifact, push as push_artifact};

use crate::fsutil::write_atomically;
use crate::spec::{OciSource, Sha256, Source};

/// How long one download or pull may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

pub struct Sources {
    dir: PathBuf,
    /// The largest module a download or pull may bring (`max_module_size`).
    max_module_bytes: u64,
}

/// A module's bytes and the source that names exactly them.
pub struct Module {
    pub bytes: Vec<u8>,
    /// The source as read, with a registry tag pinned to what it resolved to.
    pub source: Source,
}

impl Sources {
    pub fn new(cache_dir: &Path, max_module_bytes: u64) -> Result<Sources> {
        let dir = cache_dir.join("sources");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Sources {
            dir,
            max_module_bytes,
        })
    }

    /// The module's bytes, read from disk or fetched (and verified) from its URL or registry.
    pub async fn read(&self, source: &Source) -> Result<Module> {
        let bytes = match source {
            Source::Path(path) => tokio::fs::read(path)
                .await
                .with_context(|| format!("reading module {}", path.display()))?,
            Source::Uploaded { digest } => {
                bail!("module sha256:{digest} was uploaded through the admin API; upload it again")
            }
            Source::Url { url, digest } => self
                .fetch(digest, || url::download(url, self.max_module_bytes))
                .await
                .with_context(|| format!("downloading {url}"))?,
            Source::Oci(oci) => {
                return self
                    .pull(oci)
                    .await
                    .with_context(|| format!("pulling {}", oci.reference))
            }
        };
        Ok(Module {
            bytes,
            source: source.clone(),
        })
    }

    /// A registry source: with its module digest given and cached, no request at all;
    /// otherwise the manifest is resolved first (a tag → its digests), then the layer is taken
    /// from the cache or pulled.
    async fn pull(&self, source: &OciSource) -> Result<Module> {
        if let Some(digest) = &source.digest {
            if let Some(bytes) = self.cached(digest).await {
                return Ok(Module {
                    bytes,
                    source: Source::Oci(source.clone()),
                });
            }
        }
        let registry = oci::Registry::connect(&source.reference, source.plain_http)?;
        let artifact = timed(registry.resolve(self.max_module_bytes)).await?;
        if let Some(want) = &source.digest {
            if *want != artifact.module_digest {
                bail!(
                    "digest mismatch: the manifest says sha256:{want}, the artifact's wasm layer is sha256:{}",
                    artifact.module_digest
                );
            }
        }
        let bytes = self
            .fetch(&artifact.module_digest, || registry.pull_layer(&artifact))
            .await?;
        Ok(Module {
            bytes,
            source: Source::Oci(OciSource {
                reference: source.reference.pinned(artifact.manifest_digest.clone()),
                digest: Some(artifact.module_digest),
                plain_http: source.plain_http,
            }),
        })
    }

    /// The cached bytes of `digest`, if the cache has them intact.
    async fn cached(&self, digest: &Sha256) -> Option<Vec<u8>> {
        let cached = self.cache_path(digest);
        let bytes = tokio::fs::read(&cached).await.ok()?;
        if Sha256::of(&bytes) == *digest {
            return Some(bytes);
        }
        tracing::warn!(file = %cached.display(), "cached module does not match its digest; fetching again");
        None
    }

    fn cache_path(&self, digest: &Sha256) -> PathBuf {
        self.dir.join(format!("{digest}.wasm"))
    }

    /// The bytes named by `digest`: from the cache, or from `download` (bounded in time,
    /// verified, then cached).
    async fn fetch<F, Fut>(&self, digest: &Sha256, download: F) -> Result<Vec<u8>>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>>>,
    {
        if let Some(bytes) = self.cached(digest).await {
            return Ok(bytes);
        }
        let bytes = timed(download()).await?;
        let got = Sha256::of(&bytes);
        if got != *digest {
            bail!(
                "digest mismatch: the manifest says sha256:{digest}, the download is sha256:{got}"
            );
        }
        let (cached, data) = (self.cache_path(digest), bytes.clone());
        tokio::task::spawn_blocking(move || write_atomically(&cached, &data)).await??;
        tracing::info!(sha256 = %digest.short(), bytes = bytes.len(), "fetched module");
        Ok(bytes)
    }
}

async fn timed<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| anyhow!("timed out after {}s", FETCH_TIMEOUT.as_secs()))?
}

/// One wording of "over `max_module_size`" for every kind of source.
fn too_large(what: impl std::fmt::Display, max: u64) -> anyhow::Error {
    anyhow!("too large: {what}, more than max_module_size ({max} bytes)")
}
