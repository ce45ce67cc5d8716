//! Spin's `{ url, digest }` sources: one HTTP(S) GET (rustls with the webpki roots), bounded
//! in size. Time bounds, verification and caching are the caller's (`mod.rs`).

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

pub async fn download(url: &str, max_bytes: u64) -> Result<Vec<u8>> {
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
    let limit = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let body = Limited::new(response.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                super::too_large("the download is longer", max_bytes)
            } else {
                anyhow!("{e}")
            }
        })?;
    Ok(body.to_bytes().to_vec())
}
