//! The guest's response body on its way to the client, cut off (connection aborted) when it
//! grows past the response size limit or is still on its way at the request deadline.
//!
//! The deadline is the connection's [`ResponseDeadline`], set while this body lives: the
//! connection is closed at it even if hyper never polls this body again (a client that stops
//! reading). The body holds the request's share of the execution slot and in-flight gauge until
//! it is done, and cancels the guest if it is dropped before its end (the client left).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::admission::Permit;
use super::response::BoxError;
use super::serve::ResponseDeadline;
use crate::engine::CancelOnDrop;

pub struct GuardedBody {
    inner: wasmtime_wasi_http::WasiBody,
    remaining: u64,
    deadline: Arc<ResponseDeadline>,
    _permit: Arc<Permit>,
    cancel: CancelOnDrop,
}

impl GuardedBody {
    pub fn new(
        inner: wasmtime_wasi_http::WasiBody,
        max_bytes: u64,
        deadline: Arc<ResponseDeadline>,
        until: Instant,
        permit: Arc<Permit>,
        cancel: CancelOnDrop,
    ) -> GuardedBody {
        deadline.set(until);
        GuardedBody {
            inner,
            remaining: max_bytes,
            deadline,
            _permit: permit,
            cancel,
        }
    }
}

impl Drop for GuardedBody {
    fn drop(&mut self) {
        self.deadline.clear();
        if self.inner.is_end_stream() {
            // Complete (hyper does not poll a body past its end): nothing to cancel.
            self.cancel.disarm();
        }
    }
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
            Poll::Ready(None) => {
                // The whole body is out: nothing left to cancel.
                self.cancel.disarm();
                Poll::Ready(None)
            }
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
