//! One public request, start to end, as named steps: health endpoints → route → pick a
//! version → admit (concurrency limit and bounded queue) → read the body under its limit →
//! call the guest → finish (response headers, metrics, one log line, the canary guard).
//!
//! Each step either passes the request on or answers it; the [`Outcome`] says which component
//! and version answered, for the metrics and the log. Nothing here reads the manifest, compiles
//! wasm or waits on a lock that a slow operation holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use super::admission::{Admission, ExecutionSlot};
use super::body::GuardedBody;
use super::response::{
    error_response, json_response, ResponseBody, LABEL_HEADER, REQUEST_ID_HEADER, VERSION_HEADER,
};
use crate::deployments::{Deployments, Role, Slot, Version};
use crate::engine::{classify, Failure, RequestData};
use crate::metrics::{Metrics, RejectReason};
use crate::router::Router;
use crate::spec::{AppLimits, ComponentId};

/// What the request path shares; built once at start-up.
pub struct Public {
    router: Router<ComponentId>,
    deployments: Arc<Deployments>,
    limits: AppLimits,
    metrics: Arc<Metrics>,
    admission: Admission,
    request_ids: RequestIds,
}

impl Public {
    pub fn new(
        router: Router<ComponentId>,
        deployments: Arc<Deployments>,
        limits: AppLimits,
        metrics: Arc<Metrics>,
    ) -> Public {
        Public {
            admission: Admission::new(
                limits.max_concurrent_requests,
                limits.max_queued_requests,
                limits.request_timeout,
            ),
            request_ids: RequestIds::new(),
            router,
            deployments,
            limits,
            metrics,
        }
    }
}

/// Request ids: a random per-process prefix and a counter (cheap, unique across replicas).
struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        RequestIds {
            prefix: format!("{:08x}", rand::random::<u32>()),
            next: AtomicU64::new(1),
        }
    }

    /// The client's `x-request-id` if it is sane, else a new one.
    fn for_request(&self, req: &Request<Incoming>) -> String {
        req.headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "{}-{}",
                    self.prefix,
                    self.next.fetch_add(1, Ordering::Relaxed)
                )
            })
    }
}

/// Who answered a request, when a component did (or was meant to).
struct Answered {
    route: Arc<str>,
    component: ComponentId,
    version: Option<Arc<str>>,
}

/// A request's response and who gave it.
struct Outcome {
    response: Response<ResponseBody>,
    answered: Option<Answered>,
}

impl Outcome {
    fn host(response: Response<ResponseBody>) -> Outcome {
        Outcome {
            response,
            answered: None,
        }
    }
}

/// One public request, start to end.
pub async fn handle(public: Arc<Public>, req: Request<Incoming>) -> Response<ResponseBody> {
    let started = Instant::now();
    let request_id = public.request_ids.for_request(&req);
    let method = req.method().clone();
    let path = req.uri().path().to_string();

    let Outcome {
        mut response,
        answered,
    } = dispatch(&public, req, &request_id, started).await;

    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    if let Some(Answered {
        route,
        component,
        version: Some(version),
    }) = &answered
    {
        public
            .metrics
            .request(route, component, version, status, seconds);
    }
    let component = answered.as_ref().map(|a| a.component.as_str());
    let version = answered.as_ref().and_then(|a| a.version.as_deref());
    tracing::info!(
        target: "fnhost::request",
        request_id = %request_id,
        method = %method,
        path = %path,
        component = component.unwrap_or("-"),
        version = version.unwrap_or("-"),
        status,
        ms = format!("{:.2}", seconds * 1000.0),
        "request"
    );
    response
}

async fn dispatch(
    public: &Public,
    req: Request<Incoming>,
    request_id: &str,
    started: Instant,
) -> Outcome {
    if let Some(resp) = health(public, req.uri().path()) {
        return Outcome::host(resp);
    }
    let (component, route) = match public.router.route(req.uri().path()) {
        Some((c, r)) => (c.clone(), r.clone()),
        None => {
            public.metrics.rejected(RejectReason::NoRoute);
            let msg = format!("no route for {}", req.uri().path());
            return Outcome::host(error_response(StatusCode::NOT_FOUND, msg));
        }
    };
    let slot = public
        .deployments
        .slot(component.as_str())
        .expect("the router leads only to components the deployments hold");
    let mut answered = Answered {
        route,
        component,
        version: None,
    };
    let (version, role) = match pick(public, slot, &req) {
        Ok(picked) => picked,
        Err(response) => {
            return Outcome {
                response,
                answered: Some(answered),
            }
        }
    };
    answered.version = Some(version.name.clone());
    let response = match admit_and_read(public, req, request_id).await {
        Ok((slot_permit, guest_req)) => {
            call_guest(
                public,
                &version,
                slot_permit,
                guest_req,
                request_id,
                started,
            )
            .await
        }
        Err(response) => response,
    };
    slot.record(&version, role, response.status().as_u16(), &public.metrics);
    Outcome {
        response,
        answered: Some(answered),
    }
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

#[derive(Serialize)]
struct Readiness<'a> {
    ready: bool,
    not_ready: Vec<NotReady<'a>>,
}

#[derive(Serialize)]
struct NotReady<'a> {
    component: &'a str,
    error: Option<String>,
}

/// `/healthz` (the process serves), `/readyz` (every component has a version).
fn health(public: &Public, path: &str) -> Option<Response<ResponseBody>> {
    match path {
        "/healthz" | "/.well-known/spin/health" => {
            Some(json_response(StatusCode::OK, &Health { status: "ok" }))
        }
        "/readyz" => {
            let not_ready: Vec<NotReady> = public
                .deployments
                .slots()
                .filter(|s| !s.is_ready())
                .map(|s| NotReady {
                    component: s.id.as_str(),
                    error: s.state().load_error.clone(),
                })
                .collect();
            let ready = not_ready.is_empty();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Some(json_response(status, &Readiness { ready, not_ready }))
        }
        _ => None,
    }
}

/// The version that serves this request, or 503 when the component has none.
#[allow(clippy::result_large_err)] // the error is the answer, moved once
fn pick(
    public: &Public,
    slot: &Slot,
    req: &Request<Incoming>,
) -> Result<(Arc<Version>, Role), Response<ResponseBody>> {
    slot.pick(req.headers()).ok_or_else(|| {
        public.metrics.rejected(RejectReason::NotLoaded);
        let why = slot
            .state()
            .load_error
            .clone()
            .unwrap_or_else(|| "still loading".into());
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("component {} is not loaded: {why}", slot.id),
        )
    })
}

/// The request as the guest sees it, once admitted and read.
type GuestRequest = wasmtime_wasi_http::handler::Request;

/// Refuses an announced oversized body up front, waits for an execution slot, then reads the
/// body under its limit (a chunked body over the limit becomes a clean 413 instead of an error
/// inside the guest).
#[allow(clippy::result_large_err)] // the error is the answer, moved once
async fn admit_and_read(
    public: &Public,
    req: Request<Incoming>,
    request_id: &str,
) -> Result<(ExecutionSlot, GuestRequest), Response<ResponseBody>> {
    let limit = public.limits.max_request_body_bytes;
    if let Some(len) = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if len > limit {
            public.metrics.rejected(RejectReason::BodyTooLarge);
            return Err(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body of {len} bytes exceeds the limit of {limit} bytes"),
            ));
        }
    }
    let slot = public.admission.admit(&public.metrics).await?;
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, limit as usize).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let (status, reason, msg) = if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    RejectReason::BodyTooLarge,
                    format!("request body exceeds the limit of {limit} bytes"),
                )
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    RejectReason::BadBody,
                    format!("could not read the request body: {e}"),
                )
            };
            public.metrics.rejected(reason);
            return Err(error_response(status, msg));
        }
    };
    Ok((slot, guest_request(parts, body, request_id)))
}

/// The guest gets the request id and an absolute URI (wasi:http needs one; hyper gives the
/// origin form).
fn guest_request(mut parts: Parts, body: Bytes, request_id: &str) -> GuestRequest {
    parts.headers.insert(
        REQUEST_ID_HEADER,
        HeaderValue::from_str(request_id).unwrap_or(HeaderValue::from_static("-")),
    );
    if parts.uri.authority().is_none() {
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let pq = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        if let Ok(uri) = format!("http://{host}{pq}").parse() {
            parts.uri = uri;
        }
    }
    Request::from_parts(
        parts,
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    )
}

/// Runs the request in the version's guest. The execution slot is held until the response
/// body is done (or the guest failed).
async fn call_guest(
    public: &Public,
    version: &Version,
    slot: ExecutionSlot,
    req: GuestRequest,
    request_id: &str,
    started: Instant,
) -> Response<ResponseBody> {
    let timeout = version.handler.state().request_timeout();
    let permit = slot.start(public.metrics.in_flight());
    let trace = RequestData::default();
    match version.handler.handle(trace.clone(), req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            parts
                .headers
                .insert(VERSION_HEADER, version.name_header.clone());
            if let Some(label) = &version.label_header {
                parts.headers.insert(LABEL_HEADER, label.clone());
            }
            let body = GuardedBody {
                inner: body,
                remaining: public.limits.max_response_body_bytes,
                deadline: Box::pin(tokio::time::sleep_until((started + timeout).into())),
                _permit: permit,
            };
            Response::from_parts(parts, body.boxed_unsync())
        }
        Err(e) => {
            drop(permit);
            let component = &version.component;
            let failure = classify(&e, trace.faults());
            tracing::warn!(request_id, component = %component, version = %version.name, ?failure, error = %format!("{e:#}"), "component failed");
            let (status, msg) = match failure {
                Failure::Timeout => (
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "component {component} did not answer within its request timeout of {}s",
                        timeout.as_secs_f64()
                    ),
                ),
                Failure::OutOfMemory => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("component {component} exceeded its memory limit"),
                ),
                Failure::Trap => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("component {component} failed (trap or panic) before answering"),
                ),
                Failure::Unavailable => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("component {component} could not be instantiated; retry"),
                ),
            };
            let mut resp = error_response(status, msg);
            resp.headers_mut()
                .insert(VERSION_HEADER, version.name_header.clone());
            resp
        }
    }
}
