//! Chudnovsky π with binary splitting written once per big-integer crate,
//! each using the crate's own multiplication, square root, division and
//! decimal formatting, plus pi-core's v2 for reference:
//!
//! ```text
//! pi-bigint-bench dashu|num|pi-core NDIGITS
//! ```
//!
//! Prints the elapsed time and the last 20 decimals to stderr.

use std::time::Instant;

use dashu_int::ops::SquareRoot as _;

const A: u64 = 13_591_409;
const B: u64 = 545_140_134;
const C3_OVER_24: u64 = 10_939_058_860_032_000;

/// One binary-splitting implementation per crate, same formulas.
macro_rules! chudnovsky {
    ($name:ident, $int:ty, $uint:ty, $sqrt:expr) => {
        fn $name(ndigits: usize) -> String {
            fn split(a: u64, b: u64) -> ($int, $int, $int) {
                if b - a == 1 {
                    if a == 0 {
                        return (<$int>::from(1u8), <$int>::from(1u8), <$int>::from(A));
                    }
                    let p = -(<$int>::from(6 * a - 5)
                        * <$int>::from(2 * a - 1)
                        * <$int>::from(6 * a - 1));
                    let q = <$int>::from(a)
                        * <$int>::from(a)
                        * <$int>::from(a)
                        * <$int>::from(C3_OVER_24);
                    let t = &p * <$int>::from(A + B * a);
                    return (p, q, t);
                }
                let m = (a + b) / 2;
                let (p1, q1, t1) = split(a, m);
                let (p2, q2, t2) = split(m, b);
                (&p1 * &p2, &q1 * &q2, &t1 * &q2 + &p1 * &t2)
            }
            let guard = 10;
            let digits = ndigits + guard;
            let terms = (digits as f64 / 14.181647462725477) as u64 + 2;
            let (_, q, t) = split(0, terms);
            let ten = <$uint>::from(10u8);
            let one = ten.pow(digits as _);
            let sqrt_c: $uint = $sqrt(<$uint>::from(10005u32) * &one * &one);
            let q: $uint = q.try_into().ok().unwrap();
            let t: $uint = t.try_into().ok().unwrap();
            let pi = (q * <$uint>::from(426880u32) * sqrt_c) / t;
            let s = pi.to_string();
            format!("3.{}", &s[1..1 + ndigits])
        }
    };
}

chudnovsky!(
    pi_dashu,
    dashu_int::IBig,
    dashu_int::UBig,
    |x: dashu_int::UBig| x.sqrt()
);
chudnovsky!(
    pi_num,
    num_bigint::BigInt,
    num_bigint::BigUint,
    |x: num_bigint::BigUint| x.sqrt()
);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ndigits: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .expect("usage: pi-bigint-bench dashu|num|pi-core NDIGITS");
    let start = Instant::now();
    let pi = match args[0].as_str() {
        "dashu" => pi_dashu(ndigits),
        "num" => pi_num(ndigits),
        "pi-core" => pi_core::pi_string(pi_core::Algorithm::Chudnovsky, ndigits),
        other => panic!("unknown implementation {other}"),
    };
    let tail = &pi[pi.len().saturating_sub(20)..];
    eprintln!(
        "{} {ndigits}: {:.3} s, ends …{tail}",
        args[0],
        start.elapsed().as_secs_f64()
    );
}
