//! `pi-core` owns the pi-digits function's logic, free of any WebAssembly or
//! HTTP-runtime dependency: the two digit algorithms ([`Algorithm::Machin`],
//! v1, the `picrunch` baseline, and [`Algorithm::Chudnovsky`], v2, the fast
//! one), exact truncation of their output to the requested number of
//! decimals, and the `/api/v0/pi` request contract in [`http`] (query
//! parsing and validation, JSON bodies, caching headers). The `pi-picrunch`
//! and `pi-chudnovsky` components only translate spin-sdk requests into
//! [`http::respond`] calls; a native control server can call the same code.

mod chudnovsky;
mod decimal;
pub mod http;
mod machin;
mod ntt;

/// Default number of decimals when the request gives none.
pub const DEFAULT_NDIGITS: usize = 22;
/// Default upper bound on `ndigits` (a deployment may set another).
pub const DEFAULT_MAX_NDIGITS: usize = 1_000_000;

/// Which algorithm computes the digits. Both produce identical output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// v1: Machin's arctangent formula in fixed point (`picrunch`), O(n²).
    Machin,
    /// v2: Chudnovsky series by binary splitting with NTT multiplication,
    /// quasi-linear.
    Chudnovsky,
}

/// π with exactly `ndigits` decimals, truncated (never rounded):
/// `pi_string(_, 0) == "3"`, `pi_string(_, 2) == "3.14"`.
///
/// Both algorithms compute extra digits whose error bound is known; if the
/// digits just past the cut are a run of 9s or 0s long enough that the error
/// could carry across the cut, the computation is repeated with more digits,
/// so the result is exact.
pub fn pi_string(algo: Algorithm, ndigits: usize) -> String {
    let mut extra = 0;
    loop {
        let (s, unreliable) = match algo {
            Algorithm::Machin => machin::pi_digits(ndigits + extra),
            Algorithm::Chudnovsky => (
                chudnovsky::pi_digits(ndigits + extra),
                chudnovsky::UNRELIABLE_DIGITS,
            ),
        };
        debug_assert!(s.starts_with('3'));
        let reliable = s.len() - 1 - unreliable;
        assert!(reliable > ndigits, "too few reliable digits");
        let window = &s.as_bytes()[1 + ndigits..1 + reliable];
        if window.iter().all(|&c| c == b'9') || window.iter().all(|&c| c == b'0') {
            extra = 2 * extra + 32;
            continue;
        }
        if ndigits == 0 {
            return "3".to_owned();
        }
        let mut out = String::with_capacity(ndigits + 2);
        out.push_str("3.");
        out.push_str(&s[1..1 + ndigits]);
        return out;
    }
}
