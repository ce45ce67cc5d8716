//! Spin's `{ url, digest }` sources: an HTTP(S) GET over rustls, bounded in size and
//! redirects. Time bounds, verification and caching are the caller's (`mod.rs`).
//!
//! Server certificates are checked against the system's trust store (`SSL_CERT_FILE` /
//! `SSL_CERT_DIR` are honoured, which is how the FROM-scratch image points at its bundle),
//! falling back to the webpki roots when the system has none. Redirects (S3 and release-asset
//! URLs answer with one) are followed up to [`MAX_REDIRECTS`] times, never from HTTPS to HTTP.

use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const MAX_REDIRECTS: usize = 5;

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<bytes::Bytes>>;

fn client() -> &'static HttpsClient {
    static CLIENT: OnceLock<HttpsClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let builder = match builder.with_native_roots() {
            Ok(native) => native,
            Err(e) => {
                tracing::info!(error = %e, "no system trust store; using the webpki roots for module downloads");
                hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots()
            }
        };
        let https = builder.https_or_http().enable_http1().build();
        Client::builder(TokioExecutor::new()).build(https)
    })
}

/// The body at `url`, refused as too large past `max_bytes`.
pub async fn download(url: &str, max_bytes: u64) -> Result<Vec<u8>> {
    let mut uri: Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
    for _ in 0..=MAX_REDIRECTS {
        let response = client().get(uri.clone()).await?;
        let status = response.status();
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            uri = redirect_target(&uri, response.headers())?;
            continue;
        }
        if !status.is_success() {
            bail!("HTTP {status}");
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
        return Ok(body.to_bytes().to_vec());
    }
    bail!("more than {MAX_REDIRECTS} redirects")
}

/// Where a redirect leads: its `Location`, absolute or relative to `from`; never a downgrade
/// from HTTPS to HTTP.
fn redirect_target(from: &Uri, headers: &http::HeaderMap) -> Result<Uri> {
    let location = headers
        .get(http::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| anyhow!("a redirect without a Location"))?;
    let to: Uri = if location.starts_with('/') {
        format!(
            "{}://{}{location}",
            from.scheme_str().unwrap_or("https"),
            from.authority().map(|a| a.as_str()).unwrap_or("")
        )
        .parse()?
    } else {
        location
            .parse()
            .with_context(|| format!("redirect to an invalid URL {location}"))?
    };
    match (from.scheme_str(), to.scheme_str()) {
        (Some("https"), Some("http")) => bail!("refused a redirect from HTTPS to HTTP ({to})"),
        (_, Some("http" | "https")) => Ok(to),
        _ => bail!("refused a redirect to {to}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn located(at: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(http::header::LOCATION, at.parse().unwrap());
        h
    }

    #[test]
    fn redirect_targets() {
        let from: Uri = "https://releases.example/a/m.wasm".parse().unwrap();
        assert_eq!(
            redirect_target(&from, &located("https://objects.example/m?sig=1")).unwrap(),
            "https://objects.example/m?sig=1"
        );
        assert_eq!(
            redirect_target(&from, &located("/b/m.wasm")).unwrap(),
            "https://releases.example/b/m.wasm"
        );
        assert!(redirect_target(&from, &located("http://objects.example/m")).is_err());
        assert!(redirect_target(&from, &located("file:///etc/passwd")).is_err());
        assert!(redirect_target(&from, &http::HeaderMap::new()).is_err());
    }
}
