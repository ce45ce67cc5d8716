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
//!
//! The access line itself ([`access`]) is formatted here, straight into a reused buffer, in
//! exactly the text or JSON that tracing's formatter would write for the same event: through
//! tracing's formatter a line took 0.8 µs (text) to 1.8 µs (JSON) in a warm loop and about 2%
//! of a loaded host's CPU samples, directly 0.2–0.3 µs (bench/analysis.md). The `FNHOST_LOG`
//! filter still decides whether it is written, and on a terminal (coloured output) the line
//! goes through tracing as before.

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
    // Colours for a person at a terminal; none in files, pipes and container logs.
    let ansi = io::stderr().is_terminal();
    let _ = ACCESS_FORMAT.set(match (format, ansi) {
        (_, true) => AccessFormat::Tracing,
        (LogFormat::Text, false) => AccessFormat::Text,
        (LogFormat::Json, false) => AccessFormat::Json,
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
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

/// One answered request, as its access line reports it.
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a http::Method,
    pub path: &'a str,
    /// The component that answered (or was meant to); `None` for the host's own answers.
    pub component: Option<&'a str>,
    pub version: Option<&'a str>,
    pub status: u16,
    /// Handler start to response head.
    pub elapsed: Duration,
}

/// How [`access`] writes its line; set once by [`init`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AccessFormat {
    /// Through a `tracing` event (a terminal's coloured output, or no [`init`] at all).
    Tracing,
    Text,
    Json,
}

static ACCESS_FORMAT: OnceLock<AccessFormat> = OnceLock::new();

/// Logs one answered request (target [`ACCESS_TARGET`], level INFO), unless `FNHOST_LOG`
/// filters it out.
pub fn access(line: &AccessLine<'_>) {
    if !tracing::enabled!(target: ACCESS_TARGET, Level::INFO) {
        return;
    }
    let format = ACCESS_FORMAT
        .get()
        .copied()
        .unwrap_or(AccessFormat::Tracing);
    if format == AccessFormat::Tracing {
        access_event(line);
        return;
    }
    thread_local! {
        static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    LINE.with_borrow_mut(|buf| {
        buf.clear();
        let now = humantime::format_rfc3339_micros(std::time::SystemTime::now());
        let written = match format {
            AccessFormat::Json => write_json(buf, now, line),
            _ => write_text(buf, now, line),
        };
        // Writing into a Vec fails only if a Display impl does, which none here does.
        if written.is_ok() {
            Buffered::get().append(buf);
        }
    });
}

/// The access line as a `tracing` event: what [`write_text`] and [`write_json`] must match.
fn access_event(line: &AccessLine<'_>) {
    tracing::info!(
        target: ACCESS_TARGET,
        request_id = %line.request_id,
        method = %line.method,
        path = %line.path,
        component = line.component.unwrap_or("-"),
        version = line.version.unwrap_or("-"),
        status = line.status,
        ms = %Millis(line.elapsed),
        "request"
    );
}

/// tracing's `Full` text line without target: `TIME  INFO request k=v …`; `%` fields as
/// `Display`, string fields as `Debug` (quoted).
fn write_text(
    buf: &mut Vec<u8>,
    now: impl std::fmt::Display,
    l: &AccessLine<'_>,
) -> io::Result<()> {
    write!(buf, "{now}  INFO request request_id=")?;
    buf.extend_from_slice(l.request_id.as_bytes());
    buf.extend_from_slice(b" method=");
    buf.extend_from_slice(l.method.as_str().as_bytes());
    buf.extend_from_slice(b" path=");
    buf.extend_from_slice(l.path.as_bytes());
    buf.extend_from_slice(b" component=");
    push_debug_str(buf, l.component.unwrap_or("-"));
    buf.extend_from_slice(b" version=");
    push_debug_str(buf, l.version.unwrap_or("-"));
    buf.extend_from_slice(b" status=");
    buf.extend_from_slice(itoa::Buffer::new().format(l.status).as_bytes());
    buf.extend_from_slice(b" ms=");
    push_millis(buf, l.elapsed);
    buf.push(b'\n');
    Ok(())
}

/// tracing's JSON line (`flatten_event`, no span): every field a JSON string but `status`.
fn write_json(
    buf: &mut Vec<u8>,
    now: impl std::fmt::Display,
    l: &AccessLine<'_>,
) -> io::Result<()> {
    write!(
        buf,
        r#"{{"timestamp":"{now}","level":"INFO","message":"request","request_id":"#
    )?;
    push_json_str(buf, l.request_id)?;
    buf.extend_from_slice(br#","method":"#);
    push_json_str(buf, l.method.as_str())?;
    buf.extend_from_slice(br#","path":"#);
    push_json_str(buf, l.path)?;
    buf.extend_from_slice(br#","component":"#);
    push_json_str(buf, l.component.unwrap_or("-"))?;
    buf.extend_from_slice(br#","version":"#);
    push_json_str(buf, l.version.unwrap_or("-"))?;
    buf.extend_from_slice(br#","status":"#);
    buf.extend_from_slice(itoa::Buffer::new().format(l.status).as_bytes());
    buf.extend_from_slice(br#","ms":""#);
    push_millis(buf, l.elapsed);
    buf.extend_from_slice(br#"","target":""#);
    buf.extend_from_slice(ACCESS_TARGET.as_bytes());
    buf.extend_from_slice(b"\"}\n");
    Ok(())
}

/// `s` as `{:?}` writes it: quoted, escaped through `Debug` only when a byte needs it.
fn push_debug_str(buf: &mut Vec<u8>, s: &str) {
    if s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
    } else {
        let _ = write!(buf, "{s:?}");
    }
}

/// `s` as a JSON string, escaped by serde_json only when a byte needs it.
fn push_json_str(buf: &mut Vec<u8>, s: &str) -> io::Result<()> {
    if s.bytes().all(|b| b >= b' ' && b != b'"' && b != b'\\') {
        buf.push(b'"');
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'"');
        Ok(())
    } else {
        Ok(serde_json::to_writer(buf, s)?)
    }
}

/// A duration in milliseconds with two decimals (rounded half up), as [`Millis`] shows it.
fn push_millis(buf: &mut Vec<u8>, elapsed: Duration) {
    let hundredths = (elapsed.as_nanos() + 5_000) / 10_000;
    buf.extend_from_slice(itoa::Buffer::new().format(hundredths / 100).as_bytes());
    let cents = (hundredths % 100) as u8;
    buf.extend_from_slice(&[b'.', b'0' + cents / 10, b'0' + cents % 10]);
}

/// A duration in milliseconds with two decimals, for the `tracing` event.
struct Millis(Duration);

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = Vec::with_capacity(16);
        push_millis(&mut buf, self.0);
        f.write_str(std::str::from_utf8(&buf).expect("digits and a dot"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What a test subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A fixed timestamp, so that the two lines compare whole.
    struct FixedTime;

    impl tracing_subscriber::fmt::time::FormatTime for FixedTime {
        fn format_time(
            &self,
            w: &mut tracing_subscriber::fmt::format::Writer<'_>,
        ) -> std::fmt::Result {
            w.write_str("2026-12-01T07:02:12.157504Z")
        }
    }

    /// The line tracing's formatter writes for the access event, configured as [`init`] does
    /// for a file or pipe.
    fn through_tracing(format: LogFormat, line: &AccessLine<'_>) -> String {
        let out = Captured::default();
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_timer(FixedTime)
            .with_writer({
                let out = out.clone();
                move || out.clone()
            });
        match format {
            LogFormat::Text => {
                tracing::subscriber::with_default(builder.with_target(false).finish(), || {
                    access_event(line)
                })
            }
            LogFormat::Json => tracing::subscriber::with_default(
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .finish(),
                || access_event(line),
            ),
        }
        let written = out.0.lock().unwrap().clone();
        String::from_utf8(written).unwrap()
    }

    fn direct(format: LogFormat, line: &AccessLine<'_>) -> String {
        let mut buf = Vec::new();
        let now = "2026-12-01T07:02:12.157504Z";
        match format {
            LogFormat::Text => write_text(&mut buf, now, line).unwrap(),
            LogFormat::Json => write_json(&mut buf, now, line).unwrap(),
        }
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn access_lines_are_what_tracing_would_write() {
        let get = http::Method::GET;
        let custom = http::Method::from_bytes(b"PURGE").unwrap();
        #[rustfmt::skip]
        let cases = [
            // (request id, method, path, component, version, status, elapsed in ns)
            ("3789722a-1", &get, "/api/v01/classify", Some("iris"), Some("iris@11b5a375"), 200, 1_104_999),
            ("trace-abc-123", &custom, "/", None, None, 404, 0),
            ("id", &get, r"/back\slash", Some("c"), Some(r"v\1 'q'"), 200, 999_999),
            (r#"a"b\c"#, &get, "/a%20b/\"q\"", Some("pi"), Some("v2"), 503, 12_345_678_901),
            ("ünï\tcode", &get, "/x", Some("faults"), None, 500, 4_995_000),
            ("esc\u{1b}[31m\u{7f}\u{85}", &get, "/\u{1b}", Some("c"), Some("d\"e"), 200, 100),
        ];
        for (request_id, method, path, component, version, status, nanos) in cases {
            let line = AccessLine {
                request_id,
                method,
                path,
                component,
                version,
                status,
                elapsed: Duration::from_nanos(nanos),
            };
            for format in [LogFormat::Text, LogFormat::Json] {
                let expected = through_tracing(format, &line);
                assert!(
                    expected.ends_with('\n') && expected.len() > 40,
                    "{expected:?}"
                );
                assert_eq!(direct(format, &line), expected, "{format:?}");
            }
        }
    }

    #[test]
    fn durations_are_milliseconds_with_two_decimals() {
        for (nanos, ms) in [
            (0, "0.00"),
            (100, "0.00"),
            (4_999, "0.00"),
            (5_000, "0.01"),
            (1_104_999, "1.10"),
            (1_105_000, "1.11"),
            (9_995_000, "10.00"),
            (12_345_678_901, "12345.68"),
        ] {
            assert_eq!(
                Millis(Duration::from_nanos(nanos)).to_string(),
                ms,
                "{nanos} ns"
            );
        }
    }
}
