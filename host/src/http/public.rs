//! One public request, start to end, as named steps: health endpoints → route → pick a
//! version → read the body (under its size and time limits, holding no execution slot) →
//! admit (concurrency limit and bounded queue) → call the guest → finish (response headers,
//! metrics, one log line, the canary guard).
//!
//! Each step either passes the request on or answers it; the [`Outcome`] says which component
//! and version answered, for the metrics and the log. A body the request path did not read (an
//! early answer such as a 413) is drained for a bounded time and size after the answer, so a
//! client that writes its whole body before reading still reads the answer. A client that
//! leaves cancels its guest. Nothing here reads the manifest, compiles wasm or waits on a lock
//! that a slow operation holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use super::admission::{Admission, ExecutionSlot};
use super::body::GuardedBody;
use super::response::{
    error_response, healthy, json_response, ResponseBody, LABEL_HEADER, REQUEST_ID_HEADER,
    VERSION_HEADER,
};
use super::serve::ResponseDeadline;
use crate::deployments::{Deployments, Role, Slot, Version};
use crate::engine::{classify, CancelOnDrop, Failure, RequestTrace, SlotHold};
use crate::logging::AccessLine;
use crate::metrics::{Metrics, RejectReason};
use crate::router::Router;
use crate::spec::{AppLimits, ComponentId};

/// How much of an unread request body is read and dropped after an early answer, and for how
/// long (nginx's lingering close): enough for a client that sends its whole body before it
/// reads to see the answer, bounded so a client cannot keep the host reading.
const LINGER_BYTES: usize = 64 << 20;
const LINGER_TIME: Duration = Duration::from_secs(10);

/// What the request path shares; built once at start-up.
pub struct Public {
    router: Router<ComponentId>,
    deployments: Arc<Deployments>,
    limits: AppLimits,
    metrics: Arc<Metrics>,
    /// One per serving lane.
    admission: Box<[Admission]>,
    request_ids: RequestIds,
}

impl Public {
    /// The admission of the lane this request is served on.
    fn lane_admission(&self) -> &Admission {
        let lane = crate::engine::current_lane().unwrap_or(0);
        &self.admission[lane.min(self.admission.len() - 1)]
    }

    pub fn new(
        router: Router<ComponentId>,
        deployments: Arc<Deployments>,
        limits: AppLimits,
        metrics: Arc<Metrics>,
        lanes: usize,
    ) -> Public {
        Public {
            admission: Admission::per_lane(
                lanes,
                limits.max_concurrent_requests,
                limits.max_queued_requests,
                limits.request_timeout,
            )
            .into(),
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
    fn for_request(&self, headers: &HeaderMap) -> String {
        headers
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
pub async fn handle(
    public: Arc<Public>,
    req: Request<Incoming>,
    response_deadline: Arc<ResponseDeadline>,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    let request_id = public.request_ids.for_request(&parts.headers);
    let body = UnreadBody::new(body, &parts.headers);

    let Outcome {
        mut response,
        answered,
    } = dispatch(&public, &parts, body, &response_deadline, &request_id).await;

    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    if let Some(Answered {
        route,
        component,
        version: Some(version),
    }) = &answered
    {
        public
            .metrics
            .request(route, component, version, status, elapsed.as_secs_f64());
    }
    crate::logging::access(&AccessLine {
        request_id: &request_id,
        method: &parts.method,
        path: parts.uri.path(),
        component: answered.as_ref().map(|a| a.component.as_str()),
        version: answered.as_ref().and_then(|a| a.version.as_deref()),
        status,
        elapsed,
    });
    response
}

async fn dispatch(
    public: &Public,
    parts: &Parts,
    mut body: UnreadBody,
    response_deadline: &Arc<ResponseDeadline>,
    request_id: &str,
) -> Outcome {
    if let Some(resp) = health(public, parts.uri.path()) {
        return Outcome::host(resp);
    }
    let (component, route) = match public.router.route(parts.uri.path()) {
        Some((c, r)) => (c.clone(), r.clone()),
        None => {
            public.metrics.rejected(RejectReason::NoRoute);
            let msg = format!("no route for {}", parts.uri.path());
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
    let (version, role) = match pick(public, slot, &parts.headers) {
        Ok(picked) => picked,
        Err(response) => {
            return Outcome {
                response,
                answered: Some(answered),
            }
        }
    };
    answered.version = Some(version.name.clone());
    let response = match read_body(public, parts, &mut body).await {
        Err(response) => response,
        Ok(bytes) => match public.lane_admission().admit(&public.metrics).await {
            Err(response) => response,
            Ok(slot_permit) => {
                let req = guest_request(parts, bytes, request_id);
                call_guest(
                    public,
                    &version,
                    slot_permit,
                    req,
                    response_deadline,
                    request_id,
                )
                .await
            }
        },
    };
    slot.record(&version, role, response.status().as_u16(), &public.metrics);
    Outcome {
        response,
        answered: Some(answered),
    }
}

#[derive(Serialize)]
struct Readiness<'a> {
    ready: bool,
    /// Components without a version; why stays in the log and the admin status (it may name
    /// URLs, paths or DNS errors the public has no business seeing).
    not_ready: Vec<NotReady<'a>>,
}

#[derive(Serialize)]
struct NotReady<'a> {
    component: &'a str,
}

/// `/healthz` (the process serves), `/readyz` (every component has a version).
fn health(public: &Public, path: &str) -> Option<Response<ResponseBody>> {
    match path {
        "/healthz" | "/.well-known/spin/health" => Some(healthy()),
        "/readyz" => {
            let not_ready: Vec<NotReady> = public
                .deployments
                .slots()
                .filter(|s| !s.is_ready())
                .map(|s| NotReady {
                    component: s.id.as_str(),
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
    headers: &HeaderMap,
) -> Result<(Arc<Version>, Role), Response<ResponseBody>> {
    slot.pick(headers).ok_or_else(|| {
        public.metrics.rejected(RejectReason::NotLoaded);
        let mut resp = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "component {} is not loaded yet (its module could not be loaded; see the host's log or the admin status); retry later",
                slot.id
            ),
        );
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
        resp
    })
}

/// A request body the request path may not read (an early answer): drained in the background
/// for a bounded time and size when dropped, unless the client is waiting for `100 Continue`
/// (then it has not sent the body, and reading would ask it to).
struct UnreadBody {
    body: Option<Incoming>,
    drain: bool,
}

impl UnreadBody {
    fn new(body: Incoming, headers: &HeaderMap) -> UnreadBody {
        let expects_continue = headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let has_body = headers.contains_key(http::header::TRANSFER_ENCODING)
            || headers
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() != b"0");
        UnreadBody {
            body: Some(body),
            drain: has_body && !expects_continue,
        }
    }

    fn take(&mut self) -> Option<Incoming> {
        self.body.take()
    }
}

impl Drop for UnreadBody {
    fn drop(&mut self) {
        if let (Some(body), true) = (self.body.take(), self.drain) {
            tokio::spawn(async move {
                let drained =
                    tokio::time::timeout(LINGER_TIME, Limited::new(body, LINGER_BYTES).collect())
                        .await;
                if !matches!(drained, Ok(Ok(_))) {
                    tracing::debug!(
                        "stopped draining an unread request body (too long or too large)"
                    );
                }
            });
        }
    }
}

/// Reads the request body under its size limit (an announced oversized body is refused up
/// front) and its time limit, before the request takes an execution slot.
#[allow(clippy::result_large_err)] // the error is the answer, moved once
async fn read_body(
    public: &Public,
    parts: &Parts,
    body: &mut UnreadBody,
) -> Result<Bytes, Response<ResponseBody>> {
    let limit = public.limits.max_request_body_bytes;
    if let Some(len) = parts
        .headers
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
    let incoming = body.take().expect("the body is read once");
    let timeout = public.limits.body_read_timeout;
    let read = tokio::time::timeout(timeout, Limited::new(incoming, limit as usize).collect());
    match read.await {
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e)) => {
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
            Err(error_response(status, msg))
        }
        Err(_) => {
            public.metrics.rejected(RejectReason::BodyTimeout);
            let mut resp = error_response(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within the body read timeout of {}s",
                    timeout.as_secs_f64()
                ),
            );
            resp.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            Err(resp)
        }
    }
}

/// The guest gets the request id and an absolute URI (wasi:http needs one; hyper gives the
/// origin form).
fn guest_request(
    parts: &Parts,
    body: Bytes,
    request_id: &str,
) -> wasmtime_wasi_http::handler::Request {
    let mut req = Request::builder()
        .method(parts.method.clone())
        .version(parts.version)
        .body(
            Full::new(body)
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .expect("a copy of a valid request head");
    *req.headers_mut() = parts.headers.clone();
    req.headers_mut().insert(
        REQUEST_ID_HEADER,
        HeaderValue::from_str(request_id).unwrap_or(HeaderValue::from_static("-")),
    );
    *req.uri_mut() = if parts.uri.authority().is_some() {
        parts.uri.clone()
    } else {
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
        format!("http://{host}{pq}")
            .parse()
            .unwrap_or_else(|_| parts.uri.clone())
    };
    req
}

/// Runs the request in the version's guest. The execution slot is held until the response
/// body is done *and* the guest has stopped working on the request; a client that leaves
/// before then cancels the guest.
async fn call_guest(
    public: &Public,
    version: &Version,
    slot: ExecutionSlot,
    req: wasmtime_wasi_http::handler::Request,
    response_deadline: &Arc<ResponseDeadline>,
    request_id: &str,
) -> Response<ResponseBody> {
    let timeout = version.handler.state().request_timeout();
    let started = Instant::now();
    let permit = Arc::new(slot.start(public.metrics.in_flight()));
    let trace = RequestTrace::new(request_id, Some(permit.clone() as SlotHold));
    let mut cancel = CancelOnDrop::new(&trace);
    match version.handler.handle(trace.clone(), req).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            parts
                .headers
                .insert(VERSION_HEADER, version.name_header.clone());
            if let Some(label) = &version.label_header {
                parts.headers.insert(LABEL_HEADER, label.clone());
            }
            let body = GuardedBody::new(
                body,
                public.limits.max_response_body_bytes,
                response_deadline.clone(),
                started + timeout,
                permit,
                cancel,
            );
            Response::from_parts(parts, body.boxed_unsync())
        }
        Err(e) => {
            cancel.disarm();
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
