//! The public HTTP listener and the per-request flow.
//!
//! Accept loop (hyper HTTP/1.1, header size and read-time limits, graceful shutdown) and, for
//! each request: health endpoints → route → pick a version → admission (concurrency limit and
//! bounded queue) → request body limit → the version's wasi:http handler → response with the
//! `fnhost-version` and `x-request-id` headers, a response-body size and time limit, one log
//! line and the metrics. Nothing here reads the manifest, compiles wasm or waits on a lock that
//! a slow operation holds.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::deployments::Deployments;
use crate::engine::{classify, Failure};
use crate::manifest::AppSettings;
use crate::metrics::Metrics;
use crate::router::Router;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ResponseBody = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub const VERSION_HEADER: &str = "fnhost-version";
pub const LABEL_HEADER: &str = "fnhost-version-label";
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// What the request path shares; built once at start-up.
pub struct Public {
    pub router: Router,
    pub deployments: Arc<Deployments>,
    pub settings: AppSettings,
    pub metrics: Arc<Metrics>,
    executing: Arc<Semaphore>,
    queued: AtomicUsize,
    request_ids: RequestIds,
}

impl Public {
    pub fn new(
        router: Router,
        deployments: Arc<Deployments>,
        settings: AppSettings,
        metrics: Arc<Metrics>,
    ) -> Public {
        Public {
            executing: Arc::new(Semaphore::new(settings.max_concurrent_requests)),
            queued: AtomicUsize::new(0),
            request_ids: RequestIds::new(),
            router,
            deployments,
            settings,
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
    fn next(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Serves HTTP/1.1 on `listener` with `service` until `shutdown` fires, then lets in-flight
/// requests finish (bounded by `drain`).
pub async fn serve<S, F>(
    listener: TcpListener,
    settings: AppSettings,
    service: S,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    drain: Duration,
) where
    S: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // Also bounds how long an idle keep-alive connection may wait for its next request:
        // hyper starts this timer whenever it waits for a request head.
        .header_read_timeout(settings.header_read_timeout)
        .max_header_size(settings.max_header_bytes);
    if settings.max_headers != 100 {
        // hyper's default is 100 on the stack; another value moves headers to the heap.
        builder.max_headers(settings.max_headers);
    }
    let connections = Arc::new(Semaphore::new(settings.max_connections));
    loop {
        let (stream, peer, permit) = tokio::select! {
            accepted = async {
                let permit = connections.clone().acquire_owned().await.expect("never closed");
                (listener.accept().await, permit)
            } => match accepted {
                (Ok((stream, peer)), permit) => (stream, peer, permit),
                (Err(e), _) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let svc = hyper::service::service_fn(move |req| {
            let fut = service(req, peer);
            async move { Ok::<_, Infallible>(fut.await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(drain) => tracing::warn!("shutdown: gave up waiting for connections after {}s", drain.as_secs()),
    }
}

pub fn json_response(status: StatusCode, body: serde_json::Value) -> Response<ResponseBody> {
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response<ResponseBody> {
    json_response(status, serde_json::json!({ "error": message.into() }))
}

pub fn full(body: impl Into<Bytes>) -> ResponseBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// One public request, start to end.
pub async fn handle(public: Arc<Public>, req: Request<Incoming>) -> Response<ResponseBody> {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| public.request_ids.next());
    let method = req.method().clone();
    let path = req.uri().path().to_string();

    let (mut resp, component, version, route) = dispatch(&public, req, &request_id, started).await;

    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if let (Some(component), Some(version)) = (&component, &version) {
        public.metrics.request(
            route.as_deref().unwrap_or(""),
            component,
            version,
            status,
            ms / 1000.0,
        );
    }
    tracing::info!(
        target: "fnhost::request",
        request_id = %request_id,
        method = %method,
        path = %path,
        component = component.as_deref().unwrap_or("-"),
        version = version.as_deref().unwrap_or("-"),
        status,
        ms = format!("{ms:.2}"),
        "request"
    );
    resp
}

async fn dispatch(
    public: &Public,
    req: Request<Incoming>,
    request_id: &str,
    started: Instant,
) -> (
    Response<ResponseBody>,
    Option<String>,
    Option<String>,
    Option<String>,
) {
    let path = req.uri().path();
    match path {
        "/healthz" | "/.well-known/spin/health" => {
            return (
                json_response(StatusCode::OK, serde_json::json!({"status": "ok"})),
                None,
                None,
                None,
            )
        }
        "/readyz" => {
            let ready = public.deployments.all_ready();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let not_ready: Vec<_> = public
                .deployments
                .slots()
                .filter(|s| s.state().current.is_none())
                .map(|s| serde_json::json!({"component": s.name, "error": s.state().load_error}))
                .collect();
            return (
                json_response(
                    status,
                    serde_json::json!({"ready": ready, "not_ready": not_ready}),
                ),
                None,
                None,
                None,
            );
        }
        _ => {}
    }
    let Some((component, route)) = public.router.route(path) else {
        public.metrics.rejected("no_route");
        return (
            error_response(StatusCode::NOT_FOUND, format!("no route for {path}")),
            None,
            None,
            None,
        );
    };
    let component = component.to_string();
    let route = Some(route.to_string());
    let slot = public
        .deployments
        .slot(&component)
        .expect("the router only names loaded components");
    let Some((version, role)) = slot.pick(req.headers()) else {
        public.metrics.rejected("not_loaded");
        let why = slot
            .state()
            .load_error
            .clone()
            .unwrap_or_else(|| "still loading".into());
        return (
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("component {component} is not loaded: {why}"),
            ),
            Some(component),
            None,
            route,
        );
    };
    let version_name = Some(version.name.clone());

    let limit = public.settings.max_request_body_bytes;
    if let Some(len) = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
    {
        if len > limit {
            public.metrics.rejected("body_too_large");
            return (
                error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body of {len} bytes exceeds the limit of {limit} bytes"),
                ),
                Some(component),
                version_name,
                route,
            );
        }
    }

    let permit = match admit(public).await {
        Ok(p) => p,
        Err(resp) => return (resp, Some(component), version_name, route),
    };

    let (mut parts, body) = req.into_parts();
    // Bodies are small for functions; reading it first turns an over-limit chunked body into a
    // clean 413 instead of an error inside the guest.
    let body = match Limited::new(body, limit as usize).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_large = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            let (status, reason, msg) = if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("request body exceeds the limit of {limit} bytes"),
                )
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    format!("could not read the request body: {e}"),
                )
            };
            public.metrics.rejected(reason);
            return (
                error_response(status, msg),
                Some(component),
                version_name,
                route,
            );
        }
    };
    parts.headers.insert(
        REQUEST_ID_HEADER,
        HeaderValue::from_str(request_id).unwrap_or(HeaderValue::from_static("-")),
    );
    // wasi:http needs an absolute URI; hyper gives the origin form.
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
    let guest_req = Request::from_parts(
        parts,
        Full::new(body)
            .map_err(|never| match never {})
            .boxed_unsync(),
    );

    let timeout = version.handler.state().request_timeout();
    let in_flight = public.metrics.in_flight().clone();
    in_flight.inc();
    let result = version.handler.handle((), guest_req).await;
    let resp = match result {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            parts.headers.insert(
                VERSION_HEADER,
                HeaderValue::from_str(&version.name).expect("version names are ASCII"),
            );
            if let Some(label) = version
                .spec
                .label
                .as_deref()
                .and_then(|l| HeaderValue::from_str(l).ok())
            {
                parts.headers.insert(LABEL_HEADER, label);
            }
            let body = GuardedBody {
                inner: body,
                remaining: public.settings.max_response_body_bytes,
                deadline: Box::pin(tokio::time::sleep_until((started + timeout).into())),
                _permit: permit,
                _in_flight: InFlight(in_flight),
            };
            Response::from_parts(parts, body.boxed_unsync())
        }
        Err(e) => {
            drop(InFlight(in_flight));
            drop(permit);
            let failure = classify(&e, started.elapsed(), timeout);
            tracing::warn!(request_id, component, version = %version.name, ?failure, error = %format!("{e:#}"), "component failed");
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
            resp.headers_mut().insert(
                VERSION_HEADER,
                HeaderValue::from_str(&version.name).expect("version names are ASCII"),
            );
            resp
        }
    };
    slot.record(&version, role, resp.status().as_u16(), &public.metrics);
    (resp, Some(component), version_name, route)
}

/// Concurrency limit with a bounded queue: a slot now, a place in the queue, or 503.
async fn admit(public: &Public) -> Result<OwnedSemaphorePermit, Response<ResponseBody>> {
    if let Ok(p) = public.executing.clone().try_acquire_owned() {
        return Ok(p);
    }
    let max_queue = public.settings.max_queued_requests;
    if public.queued.fetch_add(1, Ordering::AcqRel) >= max_queue {
        public.queued.fetch_sub(1, Ordering::AcqRel);
        public.metrics.rejected("queue_full");
        let mut resp = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "server busy: {} requests executing and {max_queue} queued; retry later",
                public.settings.max_concurrent_requests
            ),
        );
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(resp);
    }
    public.metrics.queued().inc();
    let waited = tokio::time::timeout(
        public.settings.request_timeout,
        public.executing.clone().acquire_owned(),
    )
    .await;
    public.queued.fetch_sub(1, Ordering::AcqRel);
    public.metrics.queued().dec();
    match waited {
        Ok(Ok(p)) => Ok(p),
        _ => {
            public.metrics.rejected("queue_timeout");
            let mut resp = error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "server busy: waited too long for an execution slot; retry later",
            );
            resp.headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
            Err(resp)
        }
    }
}

struct InFlight(prometheus_client::metrics::gauge::Gauge<i64, std::sync::atomic::AtomicI64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The guest's response body, cut off (connection aborted) when it grows past the response
/// limit or is still streaming at the request deadline. Holds the execution slot until done.
struct GuardedBody {
    inner: wasmtime_wasi_http::WasiBody,
    remaining: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    _permit: OwnedSemaphorePermit,
    _in_flight: InFlight,
}

#[derive(Debug)]
struct BodyCut(&'static str);
impl std::fmt::Display for BodyCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}
impl std::error::Error for BodyCut {}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            tracing::warn!(
                "response body still streaming at the request deadline; closing the connection"
            );
            return Poll::Ready(Some(Err(Box::new(BodyCut(
                "response body exceeded the request timeout",
            )))));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    if n > self.remaining {
                        tracing::warn!(
                            "response body exceeds the response size limit; closing the connection"
                        );
                        return Poll::Ready(Some(Err(Box::new(BodyCut(
                            "response body exceeded the size limit",
                        )))));
                    }
                    self.remaining -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(Box::new(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
