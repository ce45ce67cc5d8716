//! The guest's response body on its way to the client, cut off (connection aborted) when it
//! grows past the response limit or is still streaming at the request deadline. It holds the
//! execution slot and the in-flight gauge until the body is done, so a slow response counts
//! against the concurrency limit for as long as it runs.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::admission::Permit;
use super::response::BoxError;

pub struct GuardedBody {
    pub inner: wasmtime_wasi_http::WasiBody,
    pub remaining: u64,
    pub deadline: Pin<Box<tokio::time::Sleep>>,
    /// Held until the body is done: the slot and the in-flight gauge.
    pub _permit: Permit,
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
