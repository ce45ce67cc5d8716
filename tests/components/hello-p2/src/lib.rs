//! `test-hello-p2`: a WASIp2 test component exporting
//! `wasi:http/incoming-handler@0.2.x` (the kind of component spin-sdk 5 and
//! `wasmtime serve` examples build), written directly against the `wasip2`
//! bindings. The host's integration tests use it to check that WASIp2 handlers
//! are served next to WASIp3 ones. Dispatch is on the request path's last
//! segment: `trap` executes `unreachable`, `version` answers with the
//! `HELLO_VERSION` environment variable (or `none`), and every other path gets
//! `200 text/plain` `hello from p2 <path-with-query>`.

use std::io::Write as _;

use wasip2::http::types::{
    Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam,
};

wasip2::http::proxy::export!(HelloP2);

struct HelloP2;

impl wasip2::exports::http::incoming_handler::Guest for HelloP2 {
    fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
        let path_with_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
        let path = path_with_query.split(['?', '#']).next().unwrap_or_default();
        let last = path
            .trim_end_matches('/')
            .rsplit('/')
            .next()
            .unwrap_or_default();

        let body = match last {
            "trap" => trap(),
            "version" => std::env::var("HELLO_VERSION").unwrap_or_else(|_| "none".to_owned()),
            _ => format!("hello from p2 {path_with_query}"),
        };
        respond(
            response_out,
            200,
            "text/plain; charset=utf-8",
            body.as_bytes(),
        );
    }
}

/// Executes the wasm `unreachable` instruction: a trap, not a Rust panic.
fn trap() -> ! {
    #[cfg(target_arch = "wasm32")]
    core::arch::wasm32::unreachable();
    #[cfg(not(target_arch = "wasm32"))]
    std::process::abort();
}

/// Sends a complete response with a `content-type` and `content-length`.
fn respond(response_out: ResponseOutparam, status: u16, content_type: &str, body: &[u8]) {
    let headers = Fields::from_list(&[
        ("content-type".to_owned(), content_type.as_bytes().to_vec()),
        (
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ),
    ])
    .expect("static response headers are valid");
    let response = OutgoingResponse::new(headers);
    response
        .set_status_code(status)
        .expect("status code is valid");
    let outgoing_body = response.body().expect("response body is taken once");
    ResponseOutparam::set(response_out, Ok(response));

    let mut stream = outgoing_body.write().expect("body stream is taken once");
    stream.write_all(body).expect("writing the response body");
    stream.flush().expect("flushing the response body");
    drop(stream);
    OutgoingBody::finish(outgoing_body, None).expect("finishing the response body");
}
