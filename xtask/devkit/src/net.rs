//! Free TCP ports on 127.0.0.1 for the servers the workflows and tests start.

use std::net::{SocketAddr, TcpListener};

/// `N` distinct ports the kernel just handed out on 127.0.0.1 and released. They are held
/// together while picked: a port released and asked for again may come back, and a server
/// given the same port twice fails. Never 8080, the default address of `wasmtime serve` (a
/// server started without `--addr` would take it).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let mut held: Vec<TcpListener> = Vec::with_capacity(N + 1);
    let mut ports = [0u16; N];
    let mut found = 0;
    for _ in 0..N + 16 {
        if found == N {
            break;
        }
        let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let port = l.local_addr().expect("a bound address").port();
        held.push(l);
        if port != 8080 {
            ports[found] = port;
            found += 1;
        }
    }
    assert_eq!(found, N, "the kernel handed out port 8080 too often");
    ports
}

/// One free port on 127.0.0.1.
pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// `N` distinct `127.0.0.1:<free port>` addresses.
pub fn free_addrs<const N: usize>() -> [SocketAddr; N] {
    free_ports::<N>().map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn ports_picked_together_are_distinct() {
        for _ in 0..50 {
            let [a, b, c] = super::free_ports::<3>();
            assert!(a != b && b != c && a != c);
            assert!(![a, b, c].contains(&8080));
        }
    }
}
