//! Any manifest text: a typed App or an error naming file, key and problem, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fnhost::manifest::parse(text, std::path::Path::new("/nonexistent/spin.toml"));
    }
});
