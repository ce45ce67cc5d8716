//! A static file server on 127.0.0.1 for one directory (the stand-in for a module store or an
//! upstream): `GET /name` answers the file, one request per connection, and counts requests.
//! Names with a `..` or hidden segment are refused (404). Stops when dropped.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub struct StaticServer {
    pub port: u16,
    /// Requests received so far.
    pub hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl StaticServer {
    pub fn start(dir: impl Into<PathBuf>) -> StaticServer {
        let dir = dir.into();
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        h.fetch_add(1, Ordering::Relaxed);
                        answer(&dir, stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        StaticServer {
            port,
            hits,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/file`.
    pub fn url(&self, file: &str) -> String {
        format!("http://127.0.0.1:{}/{file}", self.port)
    }
}

fn answer(dir: &Path, stream: TcpStream) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(reader);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // The headers are read and ignored (bounded by the read timeout and the line count).
    for _ in 0..200 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
    }
    let name = request_line.split_whitespace().nth(1).unwrap_or("/");
    let name = name.trim_start_matches('/');
    let safe = !name.is_empty()
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && !seg.starts_with('.'));
    let body = safe.then(|| std::fs::read(dir.join(name)).ok()).flatten();
    let mut stream = stream;
    let _ = match body {
        Some(b) => {
            let kind = if name.ends_with(".wasm") {
                "application/wasm"
            } else {
                "application/octet-stream"
            };
            stream
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        b.len()
                    )
                    .as_bytes(),
                )
                .and_then(|_| stream.write_all(&b))
        }
        None => stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
    };
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Client;

    #[test]
    fn serves_files_counts_requests_and_refuses_escapes() {
        let root = crate::TempDir::new("static");
        root.write("site/m.wasm", b"\0asm");
        root.write("site/.hidden", b"x");
        root.write("secret", b"outside");
        let server = StaticServer::start(root.join("site"));
        let c = Client::new(Duration::from_secs(5));
        let r = c.get(&server.url("m.wasm")).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"\0asm"[..]));
        assert_eq!(r.header("content-type"), Some("application/wasm"));
        for bad in [".hidden", "../secret", "%2e%2e/secret", ""] {
            assert_eq!(c.get(&server.url(bad)).unwrap().status, 404, "{bad}");
        }
        assert_eq!(server.hits.load(Ordering::Relaxed), 5);
    }
}
