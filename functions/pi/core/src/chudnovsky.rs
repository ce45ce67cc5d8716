//! Algorithm v2: the Chudnovsky series
//! 1/π = 12 Σ (−1)^k (6k)! (13591409 + 545140134k) / ((3k)! (k!)³ 640320^(3k+3/2)),
//! summed exactly by binary splitting into integers P, Q, T, then
//! π = 426880·√10005·Q / T evaluated with Newton reciprocal and inverse
//! square root, all in base 10^14 so the digits come out without conversion.

use crate::decimal::{self, Int};
use crate::limb::{self, Limb, Nat, LIMB_DIGITS};
use crate::ntt::{self, Spectrum};

const A: u128 = 13_591_409;
const B: u128 = 545_140_134;
/// 640320³ / 24.
const C3_OVER_24: u128 = 10_939_058_860_032_000;
/// Decimal digits each series term adds: log10(640320³ / 1728).
const DIGITS_PER_TERM: f64 = 14.181_647_462_725_477;
/// Trailing digits of [`pi_digits`] that rounding errors may reach: two limbs.
pub(crate) const UNRELIABLE_DIGITS: usize = 2 * LIMB_DIGITS;

/// P(a,b), Q(a,b), T(a,b) of the series terms a..b; P is only computed
/// when `need_p` (the top-level P is never used).
fn split(a: u64, b: u64, need_p: bool) -> (Int, Nat, Int) {
    if b - a == 1 {
        if a == 0 {
            return (Int::from_i128(1), vec![1], Int::from_i128(A as i128));
        }
        let a = a as u128;
        let p = (6 * a - 5) * (2 * a - 1) * (6 * a - 1);
        let q = a * a * a * C3_OVER_24;
        let t = p * (A + B * a);
        return (
            Int {
                neg: true,
                mag: limb::from_u128(p),
            },
            limb::from_u128(q),
            Int {
                neg: true,
                mag: limb::from_u128(t),
            },
        );
    }
    let m = a + (b - a) / 2;
    let (p1, q1, t1) = split(a, m, true);
    let (p2, q2, t2) = split(m, b, need_p);
    let shortest = [p1.mag.len(), q1.len(), t1.mag.len(), q2.len(), t2.mag.len()]
        .into_iter()
        .min()
        .unwrap_or(0);
    if shortest < decimal::NTT_THRESHOLD {
        let t = t1.mul_nat(&q2).add(&p1.mul(&t2));
        let q = decimal::mul(&q1, &q2);
        let p = if need_p { p1.mul(&p2) } else { Int::default() };
        return (p, q, t);
    }
    // With transforms, each operand is transformed once although P1 and Q2
    // appear in two products, and T1·Q2 ± P1·T2 is summed before the one
    // inverse transform: 6 forward and 3 inverse transforms instead of 12.
    let t_len = (t1.mag.len() + q2.len()).max(p1.mag.len() + t2.mag.len());
    let q_len = q1.len() + q2.len();
    let p_len = if need_p {
        p1.mag.len() + p2.mag.len()
    } else {
        0
    };
    let n = ntt::transform_len(t_len.max(q_len).max(p_len));
    let (fp1, fq1, ft1) = (
        Spectrum::new(&p1.mag, n),
        Spectrum::new(&q1, n),
        Spectrum::new(&t1.mag, n),
    );
    let (fq2, ft2) = (Spectrum::new(&q2, n), Spectrum::new(&t2.mag, n));
    let subtract = t1.neg != (p1.neg != t2.neg);
    let (t_flip, mut t_mag) =
        ntt::sum_of_products(&[(&ft1, &fq2, false), (&fp1, &ft2, subtract)], t_len);
    limb::trim(&mut t_mag);
    let t = Int {
        neg: !t_mag.is_empty() && (t1.neg != t_flip),
        mag: t_mag,
    };
    let (_, mut q) = ntt::sum_of_products(&[(&fq1, &fq2, false)], q_len);
    limb::trim(&mut q);
    let p = if need_p {
        let fp2 = Spectrum::new(&p2.mag, n);
        let (_, mut mag) = ntt::sum_of_products(&[(&fp1, &fp2, false)], p_len);
        limb::trim(&mut mag);
        Int {
            neg: p1.neg != p2.neg,
            mag,
        }
    } else {
        Int::default()
    };
    (p, q, t)
}

/// π as a decimal integer string "31415…" with at least `ndigits + 27`
/// digits after the 3, the value of which is within a few units of its last
/// place: all but its last [`UNRELIABLE_DIGITS`] digits can be trusted.
pub(crate) fn pi_digits(ndigits: usize) -> String {
    let terms = (ndigits as f64 / DIGITS_PER_TERM) as u64 + 2;
    let (_, q, t) = split(0, terms, false);
    debug_assert!(!t.neg);
    // Working precision: enough limbs for the digits, three guard limbs and
    // one more for the top limb holding only the 3.
    let k = ndigits.div_ceil(LIMB_DIGITS) + 4;
    // Q ≈ qk·B^q_exp and T ≈ tk·B^t_exp with exactly k limbs each.
    let (qk, q_exp) = to_limbs(&q, k);
    let (tk, t_exp) = to_limbs(&t.mag, k);
    let r = decimal::recip(&tk); // ≈ B^(2k) / tk
    let y = decimal::inv_sqrt(10_005, k); // ≈ B^k / √10005
    let (m1, d1) = decimal::top(&decimal::mul(&qk, &r), k);
    let (m2, d2) = decimal::top(&decimal::mul(&m1, &y), k);
    // 426880·√10005 = 426880·10005 / √10005.
    let m3 = decimal::mul_small(&m2, 4_270_934_400);
    // π ≈ m3 · B^exp
    let exp = q_exp + d1 as i64 + d2 as i64 - t_exp - 3 * k as i64;
    let s = decimal::to_decimal(&m3);
    let int_len = s.len() as i64 + exp * LIMB_DIGITS as i64;
    assert_eq!(int_len, 1, "π has one integer digit");
    s
}

/// `a` as exactly `k` limbs m and an exponent e with a ≈ m·B^e: the top k
/// limbs if a is longer, a shifted up if it is shorter (a ≠ 0).
fn to_limbs(a: &[Limb], k: usize) -> (Nat, i64) {
    if a.len() >= k {
        let (m, dropped) = decimal::top(a, k);
        (m, dropped as i64)
    } else {
        (decimal::shl(a, k - a.len()), -((k - a.len()) as i64))
    }
}
