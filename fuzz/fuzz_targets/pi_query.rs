//! Any query string and method: the pi contract answers with a status, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(query) = std::str::from_utf8(data) else { return };
    for method in ["GET", "HEAD", "POST"] {
        // A small maximum keeps each run fast; parsing is what is fuzzed.
        let reply = pi_core::http::respond(pi_core::Algorithm::Chudnovsky, method, Some(query), None, 50);
        assert!((200..500).contains(&reply.status));
    }
});
