//! Digit correctness of both algorithms against `data/pi-1m.txt`, the first
//! 1,000,000 decimals of π generated once with mpmath (`data/gen_pi.py`).

use std::sync::OnceLock;

use pi_core::{pi_string, Algorithm};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const REFERENCE_SHA256: &str = "7806ee47461b49ef1f578e14461b2c83c09c6d7a9a914275da1d71e9cbbf7069";

/// The reference decimals (after "3."), checked against their known hash.
fn reference() -> &'static str {
    static DIGITS: OnceLock<String> = OnceLock::new();
    DIGITS.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/pi-1m.txt");
        let digits = std::fs::read_to_string(path).expect("reading tests/data/pi-1m.txt");
        assert_eq!(
            sha256_hex(digits.as_bytes()),
            REFERENCE_SHA256,
            "reference file corrupted"
        );
        digits
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What `pi_string(_, n)` must return.
fn expected(n: usize) -> String {
    if n == 0 {
        "3".to_owned()
    } else {
        format!("3.{}", &reference()[..n])
    }
}

fn check(algo: Algorithm, n: usize) {
    let got = pi_string(algo, n);
    assert_eq!(
        got.len(),
        if n == 0 { 1 } else { n + 2 },
        "{algo:?} {n}: length"
    );
    if got != expected(n) {
        let at = got
            .bytes()
            .zip(expected(n).bytes())
            .position(|(a, b)| a != b);
        panic!("{algo:?} with ndigits={n} differs from the reference at byte {at:?}");
    }
}

const BOUNDARIES: &[usize] = &[0, 1, 2, 21, 22, 23, 99, 100, 1000, 4299, 4300, 4301, 10_000];

#[test]
fn reference_file_is_the_expected_one() {
    let digits = reference();
    assert_eq!(digits.len(), 1_000_000);
    assert!(digits.bytes().all(|c| c.is_ascii_digit()));
    assert!(digits.starts_with("14159265358979323846"));
    assert!(digits.ends_with("22090106105779458151"));
}

#[test]
fn known_prefixes() {
    for algo in [Algorithm::Machin, Algorithm::Chudnovsky] {
        assert_eq!(pi_string(algo, 0), "3");
        assert_eq!(pi_string(algo, 1), "3.1");
        assert_eq!(pi_string(algo, 2), "3.14");
        assert_eq!(pi_string(algo, 22), "3.1415926535897932384626");
        assert!(pi_string(algo, 99).ends_with("342117067"));
    }
}

#[test]
fn machin_boundaries() {
    for &n in BOUNDARIES {
        check(Algorithm::Machin, n);
    }
}

#[test]
fn chudnovsky_boundaries() {
    for &n in BOUNDARIES {
        check(Algorithm::Chudnovsky, n);
    }
}

#[test]
fn machin_100k() {
    check(Algorithm::Machin, 100_000);
}

#[test]
fn chudnovsky_100k() {
    check(Algorithm::Chudnovsky, 100_000);
}

#[test]
fn chudnovsky_1m_matches_reference_hash() {
    let pi = pi_string(Algorithm::Chudnovsky, 1_000_000);
    let decimals = pi.strip_prefix("3.").expect("starts with 3.");
    assert_eq!(sha256_hex(decimals.as_bytes()), REFERENCE_SHA256);
    assert!(decimals.ends_with("22090106105779458151"));
}

/// Every cut inside or next to a run of four or more 9s or 0s in the first
/// 20,000 decimals — the Feynman point "999999" at decimals 762–767, 9999 at
/// 17988 and 19437, 99999 at 19446, 0000 at 13390 and 17534 — must truncate,
/// never round: ndigits=765 ends in "…999", not "…1000".
#[test]
fn runs_of_nines_and_zeros_are_truncated() {
    let digits = reference();
    let mut cuts = Vec::new();
    for pat in ["9999", "0000"] {
        let mut from = 0;
        while let Some(i) = digits[from..20_000].find(pat) {
            let start = from + i; // 0-based index of the run's first digit
            cuts.extend(start.saturating_sub(1)..start + 7);
            from = start + 1;
        }
    }
    cuts.sort_unstable();
    cuts.dedup();
    assert!(cuts.contains(&765), "the Feynman point is covered");
    assert_eq!(&digits[761..767], "999999");
    assert!(pi_string(Algorithm::Chudnovsky, 765).ends_with("349999"));
    for &n in &cuts {
        check(Algorithm::Chudnovsky, n);
        check(Algorithm::Machin, n);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// v2 at arbitrary sizes (every limb offset and transform length).
    #[test]
    fn chudnovsky_matches_reference_anywhere(n in 0usize..200_000) {
        prop_assert_eq!(pi_string(Algorithm::Chudnovsky, n), expected(n));
    }

    /// v1 at arbitrary smaller sizes.
    #[test]
    fn machin_matches_reference_anywhere(n in 0usize..15_000) {
        prop_assert_eq!(pi_string(Algorithm::Machin, n), expected(n));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The answer for fewer digits is a prefix of the answer for more.
    #[test]
    fn shorter_answers_are_prefixes(a in 0usize..3000, b in 0usize..3000, v2 in any::<bool>()) {
        let algo = if v2 { Algorithm::Chudnovsky } else { Algorithm::Machin };
        let (short, long) = (a.min(b), a.max(b));
        let s = pi_string(algo, short);
        let l = pi_string(algo, long);
        prop_assert!(l.starts_with(&s), "{} is not a prefix of {}", s, l);
    }
}
