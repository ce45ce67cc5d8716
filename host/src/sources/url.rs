//! Spin's `{ url, digest }` sources: one HTTP(S) GET (rustls with the webpki roots), bounded
//! in time and size. Verification and caching are the caller's (`mod.rs`).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
const MAX_MODULE_BYTES: usize = 256 << 20;

pub async fn download(url: &str) -> Result<Vec<u8>> {
    tokio::time::timeout(DOWNLOAD_TIMEOUT, get(url))
        .await
        .map_err(|_| anyhow!("timed out after {}s", DOWNLOAD_TIMEOUT.as_secs()))?
}

async fn get(url: &str) -> Result<Vec<u8>> {
    let uri: http::Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let response = client.get(uri).await?;
    if !response.status().is_success() {
        bail!("HTTP {}", response.status());
    }
    let body = Limited::new(response.into_body(), MAX_MODULE_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow!("{e}"))?;
    Ok(body.to_bytes().to_vec())
}
