//! Times one digit computation, natively or as a wasm32-wasip2 command:
//!
//! ```text
//! cargo run --release -p pi-core --example pi_digits -- v2 1000000
//! wasmtime run -W wide-arithmetic=y pi_digits.wasm v2 1000000
//! ```
//!
//! Arguments: `v1`|`v2`, the number of decimals, and optionally `--print` to
//! write the digits to stdout or `--reps R` to compute R times and report the
//! median. The elapsed time (µs resolution) and the last 20 decimals go to
//! stderr.

use std::time::Instant;

use pi_core::{pi_string, Algorithm};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: pi_digits v1|v2 NDIGITS [--print | --reps R]";
    let algo = match args.first().map(String::as_str) {
        Some("v1") => Algorithm::Machin,
        Some("v2") => Algorithm::Chudnovsky,
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    };
    let Some(ndigits) = args.get(1).and_then(|s| s.parse::<usize>().ok()) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let reps = match (args.get(2).map(String::as_str), args.get(3)) {
        (Some("--reps"), Some(r)) => {
            r.parse::<usize>()
                .ok()
                .filter(|&r| r > 0)
                .unwrap_or_else(|| {
                    eprintln!("{usage}");
                    std::process::exit(2);
                })
        }
        _ => 1,
    };
    let mut times = Vec::with_capacity(reps);
    let mut pi = String::new();
    for _ in 0..reps {
        let start = Instant::now();
        pi = pi_string(algo, ndigits);
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[reps / 2];
    let tail = &pi[pi.len().saturating_sub(20)..];
    eprintln!(
        "{algo:?} {ndigits} digits: {:.6} s (median of {reps}), ends …{tail}",
        median.as_secs_f64()
    );
    if args.get(2).map(String::as_str) == Some("--print") {
        println!("{pi}");
    }
}
