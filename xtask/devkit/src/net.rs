//! Free TCP ports on 127.0.0.1 for the servers the workflows and tests start.

use std::net::{SocketAddr, TcpListener};

/// A port the kernel just handed out on 127.0.0.1 and released. Never 8080, the default
/// address of `wasmtime serve` (a server started without `--addr` would take it).
pub fn free_port() -> u16 {
    for _ in 0..16 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding 127.0.0.1:0")
            .port();
        if port != 8080 {
            return port;
        }
    }
    panic!("the kernel handed out port 8080 sixteen times in a row");
}

/// `127.0.0.1:<free port>`.
pub fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}
