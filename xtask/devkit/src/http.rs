//! The one blocking HTTP client of the workflows and tests (ureq 2), and the response it
//! returns whatever the status: a 4xx or 5xx is an answer to check, not an error. Errors are
//! transport failures only (refused, cut, timed out, a body truncated or over 512 MiB).

use std::io::Read;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use serde::de::DeserializeOwned;

/// Largest body a [`Response`] holds.
const MAX_BODY: u64 = 512 << 20;

/// A blocking HTTP/1.1 client with one timeout for each whole request.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
}

impl Client {
    /// Keeps connections alive between requests, as a browser or a load balancer would.
    pub fn new(timeout: Duration) -> Client {
        Client {
            agent: ureq::AgentBuilder::new().timeout(timeout).build(),
        }
    }

    /// A new connection for every request (what a timing of connect + request + answer needs).
    pub fn fresh_connections(timeout: Duration) -> Client {
        Client {
            agent: ureq::AgentBuilder::new()
                .timeout(timeout)
                .max_idle_connections(0)
                .build(),
        }
    }

    pub fn get(&self, url: &str) -> Result<Response> {
        self.request("GET", url, &[], None)
    }

    /// `method url` with extra `headers` and an optional body.
    pub fn request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response> {
        let mut req = self.agent.request(method, url);
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let result = match body {
            Some(b) => req.send_bytes(b),
            None if method == "POST" || method == "PUT" => req.send_bytes(&[]),
            None => req.call(),
        };
        let resp = match result {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(anyhow!("{method} {url}: {e}")),
        };
        let status = resp.status();
        let headers = resp
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = resp.header(&n).unwrap_or("").to_string();
                (n, v)
            })
            .collect();
        let mut body = Vec::new();
        resp.into_reader()
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .with_context(|| format!("{method} {url}: reading the body"))?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// A response, whatever its status.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "HTTP {}: not the expected JSON: {:.300}",
                self.status,
                self.text()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::static_server::StaticServer;

    #[test]
    fn answers_of_any_status_are_responses_and_a_refused_connection_is_an_error() {
        let dir = crate::TempDir::new("http");
        dir.write("a.json", r#"{"n": 7}"#);
        let server = StaticServer::start(dir.path());
        for client in [
            Client::new(Duration::from_secs(5)),
            Client::fresh_connections(Duration::from_secs(5)),
        ] {
            let r = client.get(&server.url("a.json")).unwrap();
            assert_eq!(r.status, 200);
            #[derive(serde::Deserialize)]
            struct A {
                n: u32,
            }
            assert_eq!(r.parse::<A>().unwrap().n, 7);
            assert_eq!(r.header("Content-Length"), Some("8"));
            assert_eq!(client.get(&server.url("missing")).unwrap().status, 404);
        }
        let port = crate::net::free_port();
        assert!(Client::new(Duration::from_secs(5))
            .get(&format!("http://127.0.0.1:{port}/"))
            .is_err());
    }
}
