//! The accept loop every listener runs: HTTP/1.1 with hyper, header size, count and read-time
//! limits, a cap on open connections, and graceful shutdown (no new connections; requests in
//! flight finish, bounded by the drain time).
//!
//! Each connection also carries a [`ResponseDeadline`]: while a response is on its way, the
//! connection is closed at that deadline even when hyper never polls the response body again
//! (a client that stops reading fills the socket buffer, and hyper then waits for the socket,
//! not the body). The deadline is checked each time the connection future is polled and
//! pending, so it costs no task, timer or wake-up per request.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::lanes::{LaneConnection, LaneTurn};
use super::response::ResponseBody;
use crate::spec::AppLimits;

/// What a service knows about the connection a request came on.
pub struct Connection {
    pub peer: SocketAddr,
    pub response_deadline: Arc<ResponseDeadline>,
}

/// When the response now on its way must be done; none when no response is.
#[derive(Default)]
pub struct ResponseDeadline {
    /// Nanoseconds after [`epoch`], plus one; 0 = none.
    at: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl ResponseDeadline {
    pub fn set(&self, at: Instant) {
        let nanos = at.saturating_duration_since(epoch()).as_nanos();
        self.at.store(
            u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1,
            Ordering::Relaxed,
        );
    }

    pub fn clear(&self) {
        self.at.store(0, Ordering::Relaxed);
    }

    fn get(&self) -> Option<(u64, Instant)> {
        match self.at.load(Ordering::Relaxed) {
            0 => None,
            n => Some((n, epoch() + Duration::from_nanos(n - 1))),
        }
    }
}

/// A connection future that ends (dropping the connection) when its response deadline passes.
struct Watched<F> {
    conn: Pin<Box<F>>,
    deadline: Arc<ResponseDeadline>,
    timer: Pin<Box<tokio::time::Sleep>>,
    armed: u64,
}

impl<F: Future> Future for Watched<F> {
    /// `None`: cut at the response deadline.
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(out) = self.conn.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        let Some((key, at)) = self.deadline.get() else {
            self.armed = 0;
            return Poll::Pending;
        };
        if key != self.armed {
            self.armed = key;
            self.timer.as_mut().reset(at.into());
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What serving one connection needs, whatever its transport.
struct Served<S> {
    builder: http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    service: S,
}

impl<S, F> Served<S>
where
    S: Fn(Request<Incoming>, &Connection) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    async fn connection<I>(self, io: I, connection: Connection, held: Held)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let peer = connection.peer;
        let deadline = connection.response_deadline.clone();
        let service = self.service;
        let svc = hyper::service::service_fn(move |req| {
            let fut = service(req, &connection);
            async move { Ok::<_, Infallible>(fut.await) }
        });
        let conn = Watched {
            conn: Box::pin(
                self.watcher
                    .watch(self.builder.serve_connection(TokioIo::new(io), svc)),
            ),
            deadline,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: 0,
        };
        match conn.await {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::debug!(%peer, error = %e, "connection ended with an error"),
            None => tracing::warn!(
                %peer,
                "response still on its way at the request deadline (slow or stalled client); closing the connection"
            ),
        }
        drop(held);
    }
}

/// What an open connection holds until it ends: its place under the cap on open connections
/// and, on a lane, its count there.
struct Held {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _lane: Option<LaneConnection>,
}

/// Serves HTTP/1.1 (over TLS when `tls` is given) on `listener` with `service` until
/// `shutdown` fires, then lets in-flight requests finish (bounded by `drain`). A connection is
/// accepted only with a permit from `connections` (shared by the loops that share a listener)
/// and, for a serving lane, when it is the lane's `turn`.
pub async fn serve<S, F>(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limits: AppLimits,
    connections: Arc<Semaphore>,
    turn: Option<LaneTurn>,
    service: S,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    drain: Duration,
) where
    S: Fn(Request<Incoming>, &Connection) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        // Also bounds how long an idle keep-alive connection may wait for its next request:
        // hyper starts this timer whenever it waits for a request head.
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes);
    if limits.max_headers != 100 {
        // hyper's default is 100 on the stack; another value moves headers to the heap.
        builder.max_headers(limits.max_headers);
    }
    loop {
        let (stream, peer, permit) = tokio::select! {
            accepted = async {
                let permit = connections.clone().acquire_owned().await.expect("never closed");
                if let Some(turn) = &turn {
                    turn.wait().await;
                }
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
        let held = Held {
            _permit: permit,
            _lane: turn.as_ref().map(LaneTurn::opened),
        };
        let connection = Connection {
            peer,
            response_deadline: Arc::default(),
        };
        let served = Served {
            builder: builder.clone(),
            watcher: graceful.watcher(),
            service: service.clone(),
        };
        match &tls {
            None => {
                tokio::spawn(served.connection(stream, connection, held));
            }
            Some(tls) => {
                let (tls, handshake_timeout) = (tls.clone(), limits.header_read_timeout);
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, tls.accept(stream)).await {
                        Ok(Ok(stream)) => served.connection(stream, connection, held).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(drain) => tracing::warn!("shutdown: gave up waiting for connections after {}s", drain.as_secs()),
    }
}
