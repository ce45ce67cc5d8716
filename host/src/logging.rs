//! The host's log: the `tracing` subscriber (`FNHOST_LOG` filter, text or JSON lines on
//! stderr) and the writer behind it, which batches access-log lines.
//!
//! Every answered request logs one line (target `fnhost::request`). Written one `write(2)`
//! each, those lines cost a system call per request (about 2.5% of the host's CPU under load,
//! bench/analysis.md). They are appended to a buffer instead and written in one call when it
//! holds [`FLUSH_BYTES`], or by a flusher thread at most [`FLUSH_INTERVAL`] after the first line
//! went in (nginx's `access_log … buffer= flush=`). Every other event flushes the buffer
//! first and is written at once, so the log keeps its order and warnings are never delayed.
//! [`flush`] writes what is left when the host stops; a host killed with SIGKILL loses at most
//! the last [`FLUSH_INTERVAL`] of access lines.

use std::io::{self, IsTerminal, Write};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The target of the per-request access-log events.
pub const ACCESS_TARGET: &str = "fnhost::request";
/// A buffer this full is written at once.
const FLUSH_BYTES: usize = 32 << 10;
/// How long an access line may wait in the buffer.
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);

/// How log lines are written (`fnhost up --log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber: `FNHOST_LOG` (an `EnvFilter`) or the default filter, lines
/// in `format` on stderr through the batching writer.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FNHOST_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,wasmtime_wasi_http=warn,cranelift=warn,wasmtime=warn",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a person at a terminal; none in files, pipes and container logs.
        .with_ansi(io::stderr().is_terminal())
        .with_timer(Rfc3339Micros)
        .with_writer(StderrLog);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

/// Timestamps as tracing's default writes them (`2026-12-01T03:28:39.908521Z`, UTC), formatted
/// by `humantime` into one buffer and written with one call: tracing's own timer formats each
/// field with a separate `write!`, a measurable part of what the access line costs per request.
struct Rfc3339Micros;

impl tracing_subscriber::fmt::time::FormatTime for Rfc3339Micros {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(
            w,
            "{}",
            humantime::format_rfc3339_micros(std::time::SystemTime::now())
        )
    }
}

/// Writes the access lines still buffered.
pub fn flush() {
    if let Some(log) = BUFFER.get() {
        log.flush_now();
    }
}

static BUFFER: OnceLock<Buffered> = OnceLock::new();

/// The access lines not yet written, and the flusher thread's wake-up.
struct Buffered {
    pending: Mutex<Vec<u8>>,
    filled: Condvar,
}

impl Buffered {
    /// The buffer, with its flusher thread started on first use.
    fn get() -> &'static Buffered {
        BUFFER.get_or_init(|| {
            std::thread::Builder::new()
                .name("fnhost-log-flush".into())
                .spawn(|| Buffered::get().flush_loop())
                .expect("cannot start the log flusher thread");
            Buffered {
                pending: Mutex::new(Vec::with_capacity(FLUSH_BYTES * 2)),
                filled: Condvar::new(),
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<u8>> {
        // A panic while holding the lock leaves bytes, not a broken invariant.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a first line, lets it (and those after it) wait [`FLUSH_INTERVAL`], writes.
    fn flush_loop(&self) {
        loop {
            let mut pending = self.lock();
            while pending.is_empty() {
                pending = self.filled.wait(pending).unwrap_or_else(|e| e.into_inner());
            }
            drop(pending);
            std::thread::sleep(FLUSH_INTERVAL);
            self.flush_now();
        }
    }

    fn flush_now(&self) {
        let mut pending = self.lock();
        write_out(&mut pending);
    }

    fn append(&self, line: &[u8]) {
        let mut pending = self.lock();
        let was_empty = pending.is_empty();
        pending.extend_from_slice(line);
        if pending.len() >= FLUSH_BYTES {
            write_out(&mut pending);
        } else if was_empty {
            self.filled.notify_one();
        }
    }

    /// Writes `line` after what is pending, at once.
    fn write_through(&self, line: &[u8]) {
        let mut pending = self.lock();
        pending.extend_from_slice(line);
        write_out(&mut pending);
    }
}

/// One `write` for everything pending (a log that cannot be written is not an error to
/// anyone: the request was answered).
fn write_out(pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        let _ = io::stderr().lock().write_all(pending);
        pending.clear();
    }
}

/// The subscriber's writer: access lines go to the buffer, everything else through it.
struct StderrLog;

/// One event's line; tracing's formatter writes it whole in one `write_all`.
enum LineWriter {
    Buffered,
    Through,
}

impl Write for LineWriter {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        match self {
            LineWriter::Buffered => Buffered::get().append(line),
            LineWriter::Through => Buffered::get().write_through(line),
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for StderrLog {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter::Through
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter {
        if meta.target() == ACCESS_TARGET && *meta.level() == Level::INFO {
            LineWriter::Buffered
        } else {
            LineWriter::Through
        }
    }
}
