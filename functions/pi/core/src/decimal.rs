//! Arithmetic on natural numbers in base 10^14 (the representation and carry
//! primitives are [`crate::limb`]'s), the handful of operations the
//! Chudnovsky evaluation needs beyond them: multiplication (schoolbook below
//! [`NTT_THRESHOLD`] limbs, [`crate::ntt`] above), multiplication and division
//! by a small number, shifts by whole limbs, Newton reciprocal and inverse
//! square root, signed integers ([`Int`]) and the decimal digit string.
//! Working in a decimal base makes that final output a plain formatting pass,
//! with no radix conversion.

use std::cmp::Ordering;

use crate::limb::{add, cmp, divrem_base, from_u128, sub, trim, Limb, Nat, BASE, LIMB_DIGITS};
use crate::ntt;

/// Below this many limbs in the shorter factor, schoolbook beats the NTT.
pub(crate) const NTT_THRESHOLD: usize = 96;

/// B^k.
fn pow_base(k: usize) -> Nat {
    let mut v = vec![0; k + 1];
    v[k] = 1;
    v
}

/// |a − b| and whether a < b.
fn abs_diff(a: &[Limb], b: &[Limb]) -> (bool, Nat) {
    match cmp(a, b) {
        Ordering::Less => (true, sub(b, a)),
        _ => (false, sub(a, b)),
    }
}

pub(crate) fn mul_small(a: &[Limb], m: u64) -> Nat {
    let mut r = Vec::with_capacity(a.len() + 2);
    let mut carry = 0u128;
    for &x in a {
        let t = x as u128 * m as u128 + carry;
        let (q, rem) = divrem_base(t);
        r.push(rem);
        carry = q;
    }
    while carry > 0 {
        r.push((carry % BASE as u128) as Limb);
        carry /= BASE as u128;
    }
    trim(&mut r);
    r
}

/// a / d (truncated), 0 < d < 2^32.
pub(crate) fn div_small(a: &[Limb], d: u32) -> Nat {
    let mut r = vec![0; a.len()];
    let mut rem = 0u128;
    for i in (0..a.len()).rev() {
        let t = rem * BASE as u128 + a[i] as u128;
        r[i] = (t / d as u128) as Limb;
        rem = t % d as u128;
    }
    trim(&mut r);
    r
}

fn mul_schoolbook(a: &[Limb], b: &[Limb]) -> Nat {
    let (a, b) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut r = Vec::with_capacity(a.len() + b.len());
    let mut carry = 0u128;
    // Column by column: each product is < 2^94 and a column has at most
    // a.len() < NTT_THRESHOLD of them, so the u128 sum cannot overflow, and
    // there is one division per output limb instead of one per product.
    for k in 0..a.len() + b.len() - 1 {
        let lo = k.saturating_sub(b.len() - 1);
        let hi = k.min(a.len() - 1);
        // Σ a[i]·b[k−i] for i in lo..=hi: a ascending against b descending.
        let col = carry + dot_reversed(&a[lo..=hi], &b[k - hi..=k - lo]);
        let (q, rem) = divrem_base(col);
        r.push(rem);
        carry = q;
    }
    r.push(carry as Limb);
    r
}

/// Σ x[t]·y[len−1−t] for slices of equal length, with fewer than 2^32 terms.
///
/// Four products per iteration: each loop back-edge carries an epoch check
/// when the host interrupts long-running guests, and this is the innermost
/// loop of every small product.
#[inline(always)]
fn dot_reversed(x: &[Limb], y: &[Limb]) -> u128 {
    debug_assert_eq!(x.len(), y.len());
    let wide = |u: Limb, v: Limb| u as u128 * v as u128;
    let (xs, ys) = (x.chunks_exact(4), y.rchunks_exact(4));
    let (x_rest, y_rest) = (xs.remainder(), ys.remainder());
    let mut sum = 0u128;
    for (x4, y4) in xs.zip(ys) {
        sum += wide(x4[0], y4[3]) + wide(x4[1], y4[2]) + wide(x4[2], y4[1]) + wide(x4[3], y4[0]);
    }
    for (&u, &v) in x_rest.iter().zip(y_rest.iter().rev()) {
        sum += wide(u, v);
    }
    sum
}

pub(crate) fn mul(a: &[Limb], b: &[Limb]) -> Nat {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut r = if a.len().min(b.len()) < NTT_THRESHOLD {
        mul_schoolbook(a, b)
    } else {
        ntt::mul(a, b)
    };
    trim(&mut r);
    r
}

pub(crate) fn square(a: &[Limb]) -> Nat {
    mul(a, a)
}

/// a / B^k (truncated).
pub(crate) fn shr(a: &[Limb], k: usize) -> Nat {
    a.get(k..).map(<[Limb]>::to_vec).unwrap_or_default()
}

/// a · B^k.
pub(crate) fn shl(a: &[Limb], k: usize) -> Nat {
    if a.is_empty() {
        return Vec::new();
    }
    let mut r = vec![0; k];
    r.extend_from_slice(a);
    r
}

/// The top `k` limbs of a, and how many low limbs were dropped:
/// a ≈ top · B^dropped.
pub(crate) fn top(a: &[Limb], k: usize) -> (Nat, usize) {
    let dropped = a.len().saturating_sub(k);
    (a[dropped..].to_vec(), dropped)
}

/// floor(n / d) by schoolbook long division, one quotient limb at a time.
/// Only used on a few limbs (the base of [`recip`]).
///
/// Both are first scaled so that d's top limb is at least B/2; then the
/// quotient limb estimated from the remainder's top two limbs and d's top
/// limb is never too small and at most two too large (Knuth, TAOCP vol. 2,
/// 4.3.1, Theorems A and B), so each limb costs one or two multiplications.
fn div_long(n: &[Limb], d: &[Limb]) -> Nat {
    debug_assert!(d.last().is_some_and(|&top| top != 0));
    let scale = BASE / (d[d.len() - 1] + 1);
    let (n, d) = (mul_small(n, scale), mul_small(d, scale));
    let (len, top) = (d.len(), d[d.len() - 1] as u128);
    let mut q = vec![0; n.len()];
    let mut rem: Nat = Vec::new();
    for i in (0..n.len()).rev() {
        rem.insert(0, n[i]);
        trim(&mut rem);
        // rem < d·B, so rem has at most len + 1 limbs.
        let leading = match rem.len().cmp(&len) {
            Ordering::Greater => rem[len] as u128 * BASE as u128 + rem[len - 1] as u128,
            Ordering::Equal => rem[len - 1] as u128,
            Ordering::Less => 0,
        };
        let mut digit = (leading / top).min(BASE as u128 - 1) as u64;
        let mut product = mul_small(&d, digit);
        while cmp(&product, &rem) == Ordering::Greater {
            digit -= 1;
            product = sub(&product, &d);
        }
        q[i] = digit;
        rem = sub(&rem, &product);
    }
    trim(&mut q);
    q
}

/// An approximation of B^(2k) / x within a few units, where x has k limbs.
///
/// Newton's iteration r ← r + r·(1 − x·r), recursing on the top half of x
/// (plus two limbs, so the squared error of the half-size result stays below
/// one unit of the full-size one).
pub(crate) fn recip(x: &[Limb]) -> Nat {
    let k = x.len();
    debug_assert!(k > 0 && x[k - 1] != 0);
    if k <= 6 {
        return div_long(&pow_base(2 * k), x);
    }
    let h = k / 2 + 2;
    let rh = recip(&x[k - h..]); // ≈ B^(2h) / x_h
    let y = mul(x, &rh); // ≈ B^(k+h)
    let (neg, e) = abs_diff(&pow_base(k + h), &y);
    // r = rh·B^(k−h) ± rh·e / B^(2h); the low h−1 limbs of e move the
    // correction by less than one unit, so drop them before multiplying.
    let c = shr(&mul(&rh, &shr(&e, h - 1)), h + 1);
    let base = shl(&rh, k - h);
    if neg {
        sub(&base, &c)
    } else {
        add(&base, &c)
    }
}

fn isqrt_u128(n: u128) -> u128 {
    let mut r = (n as f64).sqrt() as u128;
    while r * r > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    r
}

/// An approximation of B^p / √a within a few units.
///
/// Newton's iteration y ← y + y·(1 − a·y²)/2 with precision doubling.
pub(crate) fn inv_sqrt(a: u32, p: usize) -> Nat {
    match p {
        0 | 1 => {
            let n = (BASE as u128 * BASE as u128) / a as u128;
            let y1 = from_u128(isqrt_u128(n));
            if p == 0 {
                shr(&y1, 1)
            } else {
                y1
            }
        }
        // One limb squared is not enough for two: two Newton steps from one.
        2 => inv_sqrt_step(a, &inv_sqrt_step(a, &inv_sqrt(a, 1), 1, 2), 2, 2),
        _ => {
            let h = p / 2 + 1;
            inv_sqrt_step(a, &inv_sqrt(a, h), h, p)
        }
    }
}

/// From yh ≈ B^h / √a to ≈ B^p / √a (h ≤ p ≤ 2h − 1 or p = h).
fn inv_sqrt_step(a: u32, yh: &[Limb], h: usize, p: usize) -> Nat {
    let (neg, e) = abs_diff(&pow_base(2 * h), &mul_small(&square(yh), a as u64));
    // y_p = yh·B^(p−h) ± yh·e / (2·B^(3h−p))
    let c = div_small(&shr(&mul(yh, &e), 3 * h - p), 2);
    let base = shl(yh, p - h);
    if neg {
        sub(&base, &c)
    } else {
        add(&base, &c)
    }
}

/// Decimal digits of a, most significant first, without leading zeros
/// ("0" for zero).
pub(crate) fn to_decimal(a: &[Limb]) -> String {
    let Some((&hi, rest)) = a.split_last() else {
        return "0".to_owned();
    };
    let mut s = String::with_capacity(a.len() * LIMB_DIGITS);
    s.push_str(&hi.to_string());
    for &limb in rest.iter().rev() {
        let mut buf = [b'0'; LIMB_DIGITS];
        let mut x = limb;
        for d in buf.iter_mut().rev() {
            *d = b'0' + (x % 10) as u8;
            x /= 10;
        }
        s.push_str(std::str::from_utf8(&buf).expect("ASCII digits"));
    }
    s
}

/// A signed integer: sign and magnitude.
#[derive(Clone, Debug, Default)]
pub(crate) struct Int {
    pub neg: bool,
    pub mag: Nat,
}

impl Int {
    pub(crate) fn from_i128(x: i128) -> Int {
        Int {
            neg: x < 0,
            mag: from_u128(x.unsigned_abs()),
        }
    }

    pub(crate) fn mul(&self, other: &Int) -> Int {
        let mag = mul(&self.mag, &other.mag);
        Int {
            neg: !mag.is_empty() && self.neg != other.neg,
            mag,
        }
    }

    pub(crate) fn mul_nat(&self, other: &[Limb]) -> Int {
        let mag = mul(&self.mag, other);
        Int {
            neg: !mag.is_empty() && self.neg,
            mag,
        }
    }

    pub(crate) fn add(&self, other: &Int) -> Int {
        if self.neg == other.neg {
            return Int {
                neg: self.neg,
                mag: add(&self.mag, &other.mag),
            };
        }
        let (b_bigger, mag) = abs_diff(&self.mag, &other.mag);
        let neg = if b_bigger { other.neg } else { self.neg };
        Int {
            neg: neg && !mag.is_empty(),
            mag,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_str(s: &str) -> Nat {
        let mut v: Nat = s
            .as_bytes()
            .rchunks(LIMB_DIGITS)
            .map(|c| std::str::from_utf8(c).unwrap().parse::<Limb>().unwrap())
            .collect();
        trim(&mut v);
        v
    }

    /// A deterministic pseudo-random number of `n` limbs.
    fn pseudo(n: usize, seed: u64) -> Nat {
        let mut s = seed;
        let mut v: Nat = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (s >> 8) % BASE
            })
            .collect();
        if let Some(last) = v.last_mut() {
            *last = (*last).max(1);
        }
        v
    }

    #[test]
    fn ntt_matches_schoolbook() {
        for &(n, m) in &[(48, 48), (50, 300), (1000, 999), (4096, 4096), (3000, 70)] {
            let a = pseudo(n, n as u64);
            let b = pseudo(m, 7 + m as u64);
            let mut s = mul_schoolbook(&a, &b);
            trim(&mut s);
            let mut t = ntt::mul(&a, &b);
            trim(&mut t);
            assert_eq!(s, t, "{n}x{m}");
        }
        let max = vec![BASE - 1; 5000];
        let mut s = mul_schoolbook(&max, &max);
        trim(&mut s);
        assert_eq!(mul(&max, &max), s);
    }

    #[test]
    fn signed_sums_of_products() {
        use crate::ntt::{sum_of_products, transform_len, Spectrum};
        for &(la, lb, lc, ld) in &[
            (60, 70, 65, 70),
            (500, 400, 500, 400),
            (1500, 100, 1499, 101),
        ] {
            let (a, b, c, d) = (pseudo(la, 1), pseudo(lb, 2), pseudo(lc, 3), pseudo(ld, 4));
            let (ab, cd) = (mul_schoolbook(&a, &b), mul_schoolbook(&c, &d));
            let (mut ab, mut cd) = (ab, cd);
            trim(&mut ab);
            trim(&mut cd);
            let len = (la + lb).max(lc + ld);
            let n = transform_len(len);
            let spectra = [&a, &b, &c, &d].map(|x| Spectrum::new(x, n));
            for subtract in [false, true] {
                let (neg, mut got) = sum_of_products(
                    &[
                        (&spectra[0], &spectra[1], false),
                        (&spectra[2], &spectra[3], subtract),
                    ],
                    len,
                );
                trim(&mut got);
                let (want_neg, want) = if subtract {
                    abs_diff(&ab, &cd)
                } else {
                    (false, add(&ab, &cd))
                };
                assert_eq!(
                    (neg, got),
                    (want_neg, want),
                    "{la} {lb} {lc} {ld} {subtract}"
                );
                // And the other way round, so both signs are exercised.
                let (neg, mut got) = sum_of_products(
                    &[
                        (&spectra[2], &spectra[3], false),
                        (&spectra[0], &spectra[1], subtract),
                    ],
                    len,
                );
                trim(&mut got);
                let (want_neg, want) = if subtract {
                    abs_diff(&cd, &ab)
                } else {
                    (false, add(&ab, &cd))
                };
                assert_eq!(
                    (neg, got),
                    (want_neg, want),
                    "swapped {la} {lb} {lc} {ld} {subtract}"
                );
            }
        }
    }

    #[test]
    fn decimal_round_trip() {
        let s = "12345678901234567890123456789";
        assert_eq!(to_decimal(&from_str(s)), s);
        assert_eq!(to_decimal(&[]), "0");
        assert_eq!(to_decimal(&from_str("100000000000000")), "100000000000000");
        assert_eq!(to_decimal(&from_str("99999999999999")), "99999999999999");
    }

    #[test]
    fn long_division_is_exact() {
        for &(ln, ld) in &[
            (1, 1),
            (2, 1),
            (12, 6),
            (13, 6),
            (9, 3),
            (30, 7),
            (5, 5),
            (4, 6),
        ] {
            for seed in 0..20u64 {
                let n = pseudo(ln, 1000 * seed + ln as u64);
                let mut d = pseudo(ld, 77 * seed + ld as u64);
                // Small, large and boundary top limbs of the divisor.
                d[ld - 1] = [1, 2, BASE / 2 - 1, BASE / 2, BASE - 1, d[ld - 1]][seed as usize % 6];
                let q = div_long(&n, &d);
                // q·d ≤ n < (q + 1)·d
                assert_ne!(
                    cmp(&mul(&q, &d), &n),
                    Ordering::Greater,
                    "{ln}/{ld} seed {seed}"
                );
                assert_eq!(
                    cmp(&mul(&add(&q, &[1]), &d), &n),
                    Ordering::Greater,
                    "{ln}/{ld} seed {seed}"
                );
            }
        }
        // B^12 = (B^6 − 1)(B^6 + 1) + 1
        assert_eq!(
            div_long(&pow_base(12), &[BASE - 1; 6]),
            add(&pow_base(6), &[1])
        );
    }

    #[test]
    fn schoolbook_matches_one_product_at_a_time() {
        for &(la, lb) in &[(1, 1), (1, 9), (3, 5), (4, 4), (7, 95), (95, 95), (13, 200)] {
            let (a, b) = (pseudo(la, la as u64), pseudo(lb, 3 + lb as u64));
            let mut want = vec![0u128; la + lb + 1];
            for (i, &x) in a.iter().enumerate() {
                for (j, &y) in b.iter().enumerate() {
                    want[i + j] += x as u128 * y as u128;
                }
            }
            let mut carry = 0u128;
            for w in want.iter_mut() {
                let t = *w + carry;
                *w = t % BASE as u128;
                carry = t / BASE as u128;
            }
            let mut want: Nat = want.into_iter().map(|w| w as Limb).collect();
            trim(&mut want);
            let mut got = mul_schoolbook(&a, &b);
            trim(&mut got);
            assert_eq!(got, want, "{la}x{lb}");
        }
    }

    #[test]
    fn reciprocal_is_within_a_few_units() {
        for &k in &[1, 5, 7, 13, 64, 200, 1025] {
            let x = pseudo(k, 99 + k as u64);
            let r = recip(&x);
            // x·r ≤ B^(2k) < x·(r + 1) up to a few units of r.
            let lo = mul(&x, &sub(&r, &[8]));
            let hi = mul(&x, &add(&r, &[8]));
            let target = pow_base(2 * k);
            assert_eq!(cmp(&lo, &target), Ordering::Less, "k={k}");
            assert_eq!(cmp(&hi, &target), Ordering::Greater, "k={k}");
        }
    }

    #[test]
    fn inverse_square_root_is_within_a_few_units() {
        for &p in &[1, 2, 3, 4, 5, 7, 50, 333] {
            let y = inv_sqrt(10005, p);
            let target = pow_base(2 * p);
            let lo = mul_small(&square(&sub(&y, &[8])), 10005);
            let hi = mul_small(&square(&add(&y, &[8])), 10005);
            assert_eq!(cmp(&lo, &target), Ordering::Less, "p={p}");
            assert_eq!(cmp(&hi, &target), Ordering::Greater, "p={p}");
        }
    }
}
