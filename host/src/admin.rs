//! The admin API: status, deploy, canary, stage, switch, promote, rollback, weight, metrics.
//!
//! Served on its own listener (default 127.0.0.1:3001), never on the public one. Every call
//! needs `Authorization: Bearer <token>`; the token is compared in constant time (both sides
//! hashed first, so neither content nor length leaks through timing). A module arrives either as
//! the request body (`Content-Type: application/wasm`, for remote use) or as `?path=` naming a
//! file on the host. Options are query parameters. Errors are JSON `{"error": ...}`: 400 bad
//! parameters, 401 token, 404 unknown component or route, 409 state conflict (e.g. no candidate
//! to promote), 422 module refused (does not compile, wrong world, failed smoke request).

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::deployments::{CanaryPolicy, Deployments, VersionSpec};
use crate::manifest::{check_weight, FileMount, GuardSpec, Source, Stickiness};
use crate::metrics::Metrics;
use crate::server::{error_response, full, json_response, ResponseBody};

const MAX_UPLOAD_BYTES: usize = 256 << 20;

pub struct Admin {
    pub deployments: Arc<Deployments>,
    pub metrics: Arc<Metrics>,
    token_sha256: [u8; 32],
}

impl Admin {
    pub fn new(deployments: Arc<Deployments>, metrics: Arc<Metrics>, token: &str) -> Admin {
        Admin {
            deployments,
            metrics,
            token_sha256: Sha256::digest(token.as_bytes()).into(),
        }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(given) = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.trim().as_bytes()).into();
        given.ct_eq(&self.token_sha256).into()
    }
}

/// Prometheus text for a metrics-only listener (no token).
pub fn metrics_response(metrics: &Metrics) -> Response<ResponseBody> {
    let mut resp = Response::new(full(metrics.encode()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    resp
}

pub async fn handle(admin: Arc<Admin>, req: Request<Incoming>) -> Response<ResponseBody> {
    if !admin.authorized(&req) {
        let mut resp = error_response(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        resp.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"fnhost-admin\""),
        );
        return resp;
    }
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["metrics"]) => metrics_response(&admin.metrics),
        (Method::GET, ["v1", "status"]) => json_response(
            StatusCode::OK,
            serde_json::json!({ "components": admin.deployments.status() }),
        ),
        (Method::GET, ["v1", "components", name]) => match admin.deployments.slot(name) {
            Some(slot) => json_response(StatusCode::OK, slot.status()),
            None => error_response(
                StatusCode::NOT_FOUND,
                format!("unknown component \"{name}\""),
            ),
        },
        (Method::POST, ["v1", "components", name, op]) => {
            let (name, op) = (name.to_string(), op.to_string());
            match operate(&admin, &name, &op, req).await {
                Ok(status) => json_response(StatusCode::OK, status),
                Err((code, msg)) => error_response(code, msg),
            }
        }
        _ => error_response(
            StatusCode::NOT_FOUND,
            format!("no admin route {} {path}", req.method()),
        ),
    }
}

type OpError = (StatusCode, String);

fn bad(msg: impl Into<String>) -> OpError {
    (StatusCode::BAD_REQUEST, msg.into())
}

/// An operation the component's state does not allow (no candidate, no previous version).
/// Unknown components never get here: `operate` answers 404 before calling any operation.
fn conflict(e: anyhow::Error) -> OpError {
    (StatusCode::CONFLICT, format!("{e:#}"))
}

/// Query parameters an operation may take.
#[derive(Default)]
struct Params {
    path: Option<String>,
    label: Option<String>,
    weight: Option<f64>,
    sticky: Option<Stickiness>,
    guard: Option<GuardSpec>,
    mounts: Vec<FileMount>,
    smoke: Option<String>,
}

fn params(query: Option<&str>) -> Result<Params, OpError> {
    let mut p = Params::default();
    let mut max_error_rate = None;
    let mut window = None;
    for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        let v = v.to_string();
        match k.as_ref() {
            "path" => p.path = Some(v),
            "label" => p.label = Some(v),
            "weight" => {
                let w: f64 = v.parse().map_err(|_| {
                    bad(format!(
                        "weight must be a number from 0 to 100, got \"{v}\""
                    ))
                })?;
                p.weight = Some(check_weight(w).map_err(|e| bad(format!("weight {e}")))?);
            }
            "sticky_header" => p.sticky = Some(Stickiness::Header(v.to_ascii_lowercase())),
            "sticky_cookie" => p.sticky = Some(Stickiness::Cookie(v)),
            "max_error_rate" => {
                let r: f64 = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        bad(format!(
                            "max_error_rate must be a number from 0 to 1, got \"{v}\""
                        ))
                    })?;
                max_error_rate = Some(r);
            }
            "guard_window" => {
                let n: u32 = v
                    .parse()
                    .ok()
                    .filter(|n| (20..=100_000).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "guard_window must be an integer from 20 to 100000, got \"{v}\""
                        ))
                    })?;
                window = Some(n);
            }
            "mount" => {
                let (src, dst) = v.rsplit_once(':').ok_or_else(|| {
                    bad(format!("mount must be HOST_DIR:GUEST_PATH, got \"{v}\""))
                })?;
                let source =
                    std::path::absolute(src).map_err(|e| bad(format!("mount {src}: {e}")))?;
                if !source.is_dir() || !dst.starts_with('/') {
                    return Err(bad(format!("mount {v}: the host directory must exist and the guest path must be absolute")));
                }
                p.mounts.push(FileMount {
                    source,
                    destination: dst.to_string(),
                });
            }
            "smoke" => {
                if !v.starts_with('/') {
                    return Err(bad(format!(
                        "smoke must be a path like /api/v0/pi?ndigits=5, got \"{v}\""
                    )));
                }
                p.smoke = Some(v);
            }
            other => return Err(bad(format!("unknown parameter \"{other}\""))),
        }
    }
    if let Some(rate) = max_error_rate {
        p.guard = Some(GuardSpec {
            max_error_rate: rate,
            window: window.unwrap_or(20),
        });
    } else if window.is_some() {
        return Err(bad("guard_window needs max_error_rate"));
    }
    Ok(p)
}

async fn operate(
    admin: &Admin,
    name: &str,
    op: &str,
    req: Request<Incoming>,
) -> Result<serde_json::Value, OpError> {
    let deployments = &admin.deployments;
    let slot = deployments.slot(name).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("unknown component \"{name}\""),
        )
    })?;
    let p = params(req.uri().query())?;
    match op {
        "switch" => return deployments.switch(name).await.map_err(conflict),
        "promote" => return deployments.promote(name).await.map_err(conflict),
        "rollback" => return deployments.rollback(name).await.map_err(conflict),
        "weight" => {
            let weight = p.weight.ok_or_else(|| bad("weight is required"))?;
            let state = slot.state();
            let cand = state.candidate.as_ref().ok_or_else(|| (StatusCode::CONFLICT, "no candidate to change; canary or stage one first".to_string()))?;
            let policy = CanaryPolicy {
                weight,
                sticky: p.sticky.or_else(|| cand.policy.sticky.clone()),
                guard: p.guard.or_else(|| cand.policy.guard.clone()),
            };
            return deployments.set_policy(name, policy).await.map_err(conflict);
        }
        "deploy" | "canary" | "stage" => {}
        other => return Err((StatusCode::NOT_FOUND, format!("unknown operation \"{other}\" (deploy, canary, stage, switch, promote, rollback, weight)"))),
    }

    // A new version: bytes from the body, or a path on the host.
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = Limited::new(req.into_body(), MAX_UPLOAD_BYTES)
        .collect()
        .await
        .map_err(|e| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("upload failed or exceeds {MAX_UPLOAD_BYTES} bytes: {e}"),
            )
        })?
        .to_bytes();
    let (source, bytes) = match (&p.path, body.is_empty()) {
        (Some(_), false) => return Err(bad("send the module as the body or name it with ?path=, not both")),
        (Some(path), true) => {
            let abs = std::path::absolute(path).map_err(|e| bad(format!("path {path}: {e}")))?;
            (Source::Path(abs), None)
        }
        (None, false) => {
            if content_type != "application/wasm" && content_type != "application/octet-stream" {
                return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("module uploads need Content-Type: application/wasm, got \"{content_type}\"")));
            }
            (Source::Uploaded { sha256: hex::encode(Sha256::digest(&body)) }, Some(body.to_vec()))
        }
        (None, true) => return Err(bad("no module: send it as the body (Content-Type: application/wasm) or name a host file with ?path=")),
    };

    // Files, environment and outbound hosts come from the version it replaces unless overridden.
    let base = slot
        .state()
        .current
        .as_ref()
        .map(|v| v.spec.clone())
        .ok_or_else(|| {
            (
                StatusCode::CONFLICT,
                format!("component {name} has no current version"),
            )
        })?;
    let spec = VersionSpec {
        source,
        files: if p.mounts.is_empty() {
            base.files
        } else {
            p.mounts
        },
        environment: base.environment,
        allowed_outbound_hosts: base.allowed_outbound_hosts,
        label: p.label,
    };
    let version = deployments
        .load(name, spec, bytes)
        .await
        .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")))?;
    if let Some(smoke) = &p.smoke {
        deployments.smoke(&version, smoke).await.map_err(|e| {
            admin.metrics.swap(false);
            (StatusCode::UNPROCESSABLE_ENTITY, format!("refused: {e:#}"))
        })?;
    }
    match op {
        "deploy" => deployments.deploy(version).await.map_err(conflict),
        "stage" => deployments
            .set_candidate(
                version,
                CanaryPolicy {
                    weight: 0.0,
                    sticky: p.sticky,
                    guard: p.guard,
                },
            )
            .await
            .map_err(conflict),
        _ => {
            let weight = p
                .weight
                .ok_or_else(|| bad("canary needs weight (0 to 100)"))?;
            deployments
                .set_candidate(
                    version,
                    CanaryPolicy {
                        weight,
                        sticky: p.sticky,
                        guard: p.guard,
                    },
                )
                .await
                .map_err(conflict)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_parse_and_reject() {
        let p = params(Some(
            "weight=12.5&sticky_header=X-User&max_error_rate=0.05&guard_window=50&label=v2",
        ))
        .unwrap();
        assert_eq!(p.weight, Some(12.5));
        assert_eq!(p.sticky, Some(Stickiness::Header("x-user".into())));
        assert_eq!(
            p.guard,
            Some(GuardSpec {
                max_error_rate: 0.05,
                window: 50
            })
        );
        assert_eq!(p.label.as_deref(), Some("v2"));
        for (q, want) in [
            ("weight=101", "weight"),
            ("weight=abc", "weight"),
            ("weight=1.25", "one decimal"),
            ("max_error_rate=2", "max_error_rate"),
            ("guard_window=30", "needs max_error_rate"),
            ("bogus=1", "unknown parameter"),
            ("smoke=api", "smoke"),
        ] {
            let (code, msg) = params(Some(q))
                .err()
                .unwrap_or_else(|| panic!("{q} accepted"));
            assert_eq!(code, StatusCode::BAD_REQUEST);
            assert!(msg.contains(want), "{q}: {msg}");
        }
    }
}
