//! Any query string: parsed into four measurements or an error naming the field.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(query) = std::str::from_utf8(data) {
        let _ = iris_core::parse_query(Some(query));
    }
});
