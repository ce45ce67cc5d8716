//! Module bytes from a manifest `source`: a local path, or Spin's `{ url, digest }`.
//!
//! URL sources are downloaded over HTTP(S) (rustls with the webpki roots), verified against
//! their sha256 digest and cached by digest in `<cache>/sources/`, so a restart or a second
//! replica on the same volume does not download again. A digest mismatch, an HTTP error or a
//! timeout means the version is not loaded; the caller keeps serving what it had.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::{Digest, Sha256};

use crate::manifest::Source;

const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_MODULE_BYTES: usize = 256 << 20;

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
            Source::Uploaded { sha256 } => {
                bail!("module sha256:{sha256} was uploaded through the admin API; upload it again")
            }
            Source::Url { url, sha256 } => {
                let cached = self.dir.join(format!("{sha256}.wasm"));
                if let Ok(bytes) = tokio::fs::read(&cached).await {
                    if hex::encode(Sha256::digest(&bytes)) == *sha256 {
                        return Ok(bytes);
                    }
                    tracing::warn!(file = %cached.display(), "cached download does not match its digest; fetching again");
                }
                let bytes = tokio::time::timeout(DOWNLOAD_TIMEOUT, download(url))
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "downloading {url}: timed out after {}s",
                            DOWNLOAD_TIMEOUT.as_secs()
                        )
                    })??;
                let got = hex::encode(Sha256::digest(&bytes));
                if got != *sha256 {
                    bail!("downloading {url}: digest mismatch: manifest says sha256:{sha256}, the download is sha256:{got}");
                }
                let (path, data) = (cached.clone(), bytes.clone());
                tokio::task::spawn_blocking(move || crate::engine::write_atomically(&path, &data))
                    .await??;
                tracing::info!(url, sha256 = %&sha256[..8], bytes = bytes.len(), "downloaded module");
                Ok(bytes)
            }
        }
    }
}

async fn download(url: &str) -> Result<Vec<u8>> {
    let uri: http::Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let response = client
        .get(uri)
        .await
        .with_context(|| format!("downloading {url}"))?;
    if !response.status().is_success() {
        bail!("downloading {url}: HTTP {}", response.status());
    }
    let body = Limited::new(response.into_body(), MAX_MODULE_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("downloading {url}: {e}"))?;
    Ok(body.to_bytes().to_vec())
}
