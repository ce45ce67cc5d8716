//! The accept loop every listener runs: HTTP/1.1 with hyper, header size, count and read-time
//! limits, a cap on open connections, and graceful shutdown (no new connections; requests in
//! flight finish, bounded by the drain time).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::response::ResponseBody;
use crate::spec::AppLimits;

/// Serves HTTP/1.1 on `listener` with `service` until `shutdown` fires, then lets in-flight
/// requests finish (bounded by `drain`).
pub async fn serve<S, F>(
    listener: TcpListener,
    limits: AppLimits,
    service: S,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    drain: Duration,
) where
    S: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + Sync + 'static,
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
    let connections = Arc::new(Semaphore::new(limits.max_connections));
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
