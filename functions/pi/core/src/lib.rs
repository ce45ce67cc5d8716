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
mod limb;
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
        let (digits, unreliable) = match algo {
            Algorithm::Machin => machin::pi_digits(ndigits + extra),
            Algorithm::Chudnovsky => (
                chudnovsky::pi_digits(ndigits + extra),
                chudnovsky::UNRELIABLE_DIGITS,
            ),
        };
        match truncate(&digits, unreliable, ndigits) {
            Some(pi) => return pi,
            None => extra = 2 * extra + 32,
        }
    }
}

/// "3.<ndigits decimals>" from `digits` ("31415…", more digits than asked
/// for, whose value is within one unit of the last place that is followed by
/// `unreliable` digits), or `None` when the reliable digits past the cut are
/// all 9s or all 0s, so the error might carry across the cut.
fn truncate(digits: &str, unreliable: usize, ndigits: usize) -> Option<String> {
    debug_assert!(digits.starts_with('3'));
    let reliable = digits.len() - 1 - unreliable;
    assert!(reliable > ndigits, "too few reliable digits");
    let window = &digits.as_bytes()[1 + ndigits..1 + reliable];
    if window.iter().all(|&c| c == b'9') || window.iter().all(|&c| c == b'0') {
        return None;
    }
    if ndigits == 0 {
        return Some("3".to_owned());
    }
    let mut out = String::with_capacity(ndigits + 2);
    out.push_str("3.");
    out.push_str(&digits[1..1 + ndigits]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_cuts_and_detects_ambiguous_runs() {
        assert_eq!(truncate("31415926", 2, 3).as_deref(), Some("3.141"));
        assert_eq!(truncate("31415926", 2, 0).as_deref(), Some("3"));
        // The digits after the cut up to the unreliable tail are all 9s or
        // all 0s: the true value may lie on the other side of the cut.
        assert_eq!(truncate("3149999912", 2, 2), None);
        assert_eq!(truncate("3140000087", 2, 2), None);
        // A single differing reliable digit settles it.
        assert_eq!(truncate("3149999812", 2, 2).as_deref(), Some("3.14"));
        assert_eq!(truncate("3140000187", 2, 2).as_deref(), Some("3.14"));
    }
}
