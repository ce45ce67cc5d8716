//! The admin API server: status, the operations of `api::Op`, and `/metrics`.
//!
//! Served on its own listener (default 127.0.0.1:3001), never on the public one. Every call
//! needs `Authorization: Bearer <token>`; the token is compared in constant time (both sides
//! hashed first, so neither content nor length leaks through timing). A module arrives either
//! as the request body (`Content-Type: application/wasm`, for remote use), as `?path=` naming
//! a file on the host, which like `mount=` must lie under the admin roots (`host_files.rs`), or
//! as `?oci=` naming a registry artifact the host pulls. Errors are JSON `{"error": ...}`: 400
//! bad parameters, 401 token, 403 a host path the rules refuse, 404 unknown component,
//! operation or route, 409 state conflict (e.g. no candidate to promote), 413 upload too large,
//! 415 wrong upload type, 422 module refused (does not compile, wrong world, failed smoke
//! request, or a registry artifact that cannot be pulled).

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use sha2::{Digest, Sha256 as Sha256Hasher};
use subtle::ConstantTimeEq;

use super::api::{Op, OpParams, StatusResponse};
use super::host_files::{AdminRoots, Refused};
use crate::deployments::{ComponentStatus, Deployments, OpError};
use crate::http::{error_response, full, healthy, json_response, ResponseBody};
use crate::metrics::Metrics;
use crate::spec::{CanaryPolicy, FileMount, OciSource, PinKey, Sha256, Source, VersionSpec};

const MAX_UPLOAD_BYTES: usize = 256 << 20;

pub struct Admin {
    deployments: Arc<Deployments>,
    metrics: Arc<Metrics>,
    token_sha256: [u8; 32],
    roots: AdminRoots,
}

impl Admin {
    pub fn new(
        deployments: Arc<Deployments>,
        metrics: Arc<Metrics>,
        token: &str,
        roots: AdminRoots,
    ) -> Admin {
        Admin {
            deployments,
            metrics,
            token_sha256: Sha256Hasher::digest(token.as_bytes()).into(),
            roots,
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
        let given: [u8; 32] = Sha256Hasher::digest(given.trim().as_bytes()).into();
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

/// The metrics listener: `/metrics` without a token, and `/healthz` for a liveness probe that
/// the public listener's connection limit cannot starve.
pub fn metrics_listener_response(metrics: &Metrics, path: &str) -> Response<ResponseBody> {
    match path {
        "/healthz" => healthy(),
        _ => metrics_response(metrics),
    }
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
            &StatusResponse {
                components: admin.deployments.status(),
            },
        ),
        (Method::GET, ["v1", "components", name]) => match admin.deployments.slot(name) {
            Some(slot) => json_response(StatusCode::OK, &slot.status()),
            None => error_response(
                StatusCode::NOT_FOUND,
                format!("unknown component \"{name}\""),
            ),
        },
        (Method::POST, ["v1", "components", name, op]) => {
            let (name, op) = (name.to_string(), op.to_string());
            match operate(&admin, &name, &op, req).await {
                Ok(status) => json_response(StatusCode::OK, &status),
                Err((code, msg)) => error_response(code, msg),
            }
        }
        _ => error_response(
            StatusCode::NOT_FOUND,
            format!("no admin route {} {path}", req.method()),
        ),
    }
}

type Refusal = (StatusCode, String);

fn bad(msg: impl Into<String>) -> Refusal {
    (StatusCode::BAD_REQUEST, msg.into())
}

fn host_path(r: Refused) -> Refusal {
    match r {
        Refused::Forbidden(m) => (StatusCode::FORBIDDEN, m),
        Refused::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, m),
        Refused::Unreadable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
    }
}

/// The one mapping of operation errors to status codes.
fn refusal(e: OpError) -> Refusal {
    let code = match &e {
        OpError::UnknownComponent(_) => StatusCode::NOT_FOUND,
        OpError::Conflict(_) => StatusCode::CONFLICT,
        OpError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (code, e.to_string())
}

async fn operate(
    admin: &Admin,
    name: &str,
    op: &str,
    req: Request<Incoming>,
) -> Result<ComponentStatus, Refusal> {
    let deployments = &admin.deployments;
    let slot = deployments.slot(name).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("unknown component \"{name}\""),
        )
    })?;
    let op = Op::parse(op).ok_or_else(|| {
        let names: Vec<&str> = Op::ALL.iter().map(|o| o.as_str()).collect();
        (
            StatusCode::NOT_FOUND,
            format!("unknown operation \"{op}\" ({})", names.join(", ")),
        )
    })?;
    let p = OpParams::from_query(req.uri().query().unwrap_or("")).map_err(|e| bad(e.0))?;
    match op {
        Op::Switch => return deployments.switch(name).await.map_err(refusal),
        Op::Promote => return deployments.promote(name).await.map_err(refusal),
        Op::Rollback => return deployments.rollback(name).await.map_err(refusal),
        Op::Weight => {
            let weight = p.weight.ok_or_else(|| bad("weight is required"))?;
            let (sticky, guard) = (p.sticky, p.guard);
            return deployments
                .set_policy(name, move |policy| policy.reweighted(weight, sticky, guard))
                .await
                .map_err(refusal);
        }
        Op::PinKey => {
            let body = Limited::new(req.into_body(), 4096)
                .collect()
                .await
                .map_err(|_| bad("the pin key is at most 256 characters"))?
                .to_bytes();
            let text = std::str::from_utf8(&body)
                .map_err(|_| bad("the pin key must be text"))?
                .trim();
            let key = match text {
                "" => None,
                key => Some(PinKey::new(key).map_err(|e| bad(e.0))?),
            };
            return deployments.set_pin_key(name, key).await.map_err(refusal);
        }
        Op::Deploy | Op::Canary | Op::Stage => {}
    }
    let weight = match op {
        Op::Canary => Some(
            p.weight
                .ok_or_else(|| bad("canary needs weight (0 to 100)"))?,
        ),
        _ => None,
    };

    // A new version: bytes from the body or a path on the host, or pulled from a registry as it loads.
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
    let (source, bytes) = match (&p.path, &p.oci, body.is_empty()) {
        (Some(_), Some(_), _) | (Some(_), _, false) | (_, Some(_), false) => {
            return Err(bad("send the module as the body, or name it with ?path= or ?oci=: only one"))
        }
        (Some(path), None, true) => {
            let (resolved, bytes) = admin
                .roots
                .read_module(path, MAX_UPLOAD_BYTES as u64)
                .map_err(host_path)?;
            (Source::Path(resolved), Some(bytes))
        }
        (None, Some(reference), true) => {
            (Source::Oci(OciSource::new(reference.clone(), None, p.insecure)), None)
        }
        (None, None, false) => {
            if content_type != "application/wasm" && content_type != "application/octet-stream" {
                return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("module uploads need Content-Type: application/wasm, got \"{content_type}\"")));
            }
            (Source::Uploaded { digest: Sha256::of(&body) }, Some(body.to_vec()))
        }
        (None, None, true) => return Err(bad("no module: send it as the body (Content-Type: application/wasm), name a host file with ?path= or a registry artifact with ?oci=")),
    };
    let mounts = p
        .mounts
        .iter()
        .map(|m| {
            let dir = admin.roots.directory(&m.host).map_err(host_path)?;
            FileMount::new(dir, &m.guest).map_err(|e| bad(format!("mount {m}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;

    // Files, environment, outbound hosts and grants come from the version it replaces (or, for a
    // component that never loaded, from the manifest) unless overridden.
    let base = slot.inherited_spec();
    let spec = VersionSpec {
        source,
        files: if mounts.is_empty() {
            base.files
        } else {
            mounts
        },
        environment: base.environment,
        allowed_outbound_hosts: base.allowed_outbound_hosts,
        grants: base.grants,
        label: p.label,
    };
    let version = deployments.load(name, spec, bytes).await.map_err(refusal)?;
    if let Some(smoke) = &p.smoke {
        deployments.smoke(&version, smoke).await.map_err(refusal)?;
    }
    let policy = CanaryPolicy {
        weight: weight.unwrap_or_default(),
        sticky: p.sticky,
        guard: p.guard,
    };
    match op {
        Op::Deploy => deployments.deploy(version).await,
        _ => deployments.set_candidate(version, policy).await,
    }
    .map_err(refusal)
}
