//! Any request body: parsed into instances or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = iris_core::parse_instances(data);
});
