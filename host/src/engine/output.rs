//! A guest's stdout and stderr: captured per instance, capped at [`OUTPUT_CAP`] bytes, split
//! into lines and written as log events (target `fnhost::guest`) that carry the component, the
//! request id and the stream. A guest's bytes are a field value, with control characters
//! escaped: a guest cannot write a line of the host's log of its own making, and cannot fill
//! the host's log or memory.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

use super::request::InstanceRequests;
use crate::spec::ComponentId;

/// Output kept per instance (stdout and stderr together); the rest is counted and dropped.
pub const OUTPUT_CAP: usize = 64 << 10;
/// A longer run of bytes without a newline is logged as a line of its own.
const MAX_LINE: usize = 4 << 10;

/// One instance's output, shared by its stdout and stderr streams.
pub struct GuestOutput {
    component: ComponentId,
    requests: Arc<InstanceRequests>,
    state: Mutex<OutputState>,
}

#[derive(Default)]
struct OutputState {
    kept: usize,
    dropped: usize,
    partial: [Vec<u8>; 2],
}

#[derive(Clone, Copy)]
enum Which {
    Stdout = 0,
    Stderr = 1,
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Stdout => "stdout",
            Which::Stderr => "stderr",
        }
    }
}

impl GuestOutput {
    pub fn new(component: ComponentId, requests: Arc<InstanceRequests>) -> Arc<GuestOutput> {
        Arc::new(GuestOutput {
            component,
            requests,
            state: Mutex::default(),
        })
    }

    pub fn stdout(self: &Arc<Self>) -> GuestStream {
        GuestStream(self.clone(), Which::Stdout)
    }

    pub fn stderr(self: &Arc<Self>) -> GuestStream {
        GuestStream(self.clone(), Which::Stderr)
    }

    fn write(&self, which: Which, bytes: &[u8]) {
        let mut s = self.state.lock().unwrap();
        let keep = bytes.len().min(OUTPUT_CAP - s.kept);
        s.kept += keep;
        s.dropped += bytes.len() - keep;
        let partial = &mut s.partial[which as usize];
        partial.extend_from_slice(&bytes[..keep]);
        while let Some(end) = partial
            .iter()
            .position(|b| *b == b'\n')
            .or((partial.len() >= MAX_LINE).then_some(MAX_LINE))
        {
            let line: Vec<u8> = partial.drain(..end).collect();
            if partial.first() == Some(&b'\n') {
                partial.remove(0);
            }
            self.emit(which, &line);
        }
    }

    fn emit(&self, which: Which, line: &[u8]) {
        let text: String = String::from_utf8_lossy(line)
            .trim_end_matches('\r')
            .chars()
            .flat_map(|c| {
                let escaped = c.is_control().then(|| c.escape_default());
                escaped
                    .into_iter()
                    .flatten()
                    .chain((!c.is_control()).then_some(c))
            })
            .collect();
        let request_id = self.requests.newest_request_id().unwrap_or_default();
        tracing::info!(
            target: "fnhost::guest",
            component = %self.component,
            request_id = %request_id,
            stream = which.name(),
            output = %text,
            "guest output"
        );
    }
}

impl Drop for GuestOutput {
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap();
        let rest = std::mem::take(&mut s.partial);
        let dropped = s.dropped;
        for (which, line) in [Which::Stdout, Which::Stderr].into_iter().zip(rest) {
            if !line.is_empty() {
                self.emit(which, &line);
            }
        }
        if dropped > 0 {
            tracing::warn!(
                target: "fnhost::guest",
                component = %self.component,
                dropped_bytes = dropped,
                "guest output over {OUTPUT_CAP} bytes was dropped"
            );
        }
    }
}

/// The guest's stdout or stderr: always writable, never blocks, never fails.
#[derive(Clone)]
pub struct GuestStream(Arc<GuestOutput>, Which);

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.write(self.1, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.0.write(self.1, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(OUTPUT_CAP)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}
