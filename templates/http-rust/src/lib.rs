//! {{name}}: a WebAssembly HTTP component (spin-sdk 7, `wasi:http`), written by
//! `fnhost new http-rust`. Build it with `cargo build --release --target wasm32-wasip2 -p {{name}}`
//! (or `cargo xtask build` in the fnhost repository) and serve it with `fnhost up`.

use spin_sdk::http::{IntoResponse, Request, Response};

#[spin_sdk::http_service]
async fn handle(req: Request) -> impl IntoResponse {
    let body = format!("hello from {{name}}: {} {}\n", req.method(), req.uri().path());
    // The whole answer is in hand: say how long it is, and the host ends the response with its
    // last byte instead of streaming it chunked until the component closes the body.
    Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .header("content-length", body.len())
        .body(body)
        .expect("a static response is valid HTTP")
}
