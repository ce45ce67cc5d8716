//! Exact convolution of base-10^14 limb vectors by number-theoretic
//! transforms modulo two 62-bit primes, recombined with the Chinese
//! remainder theorem.
//!
//! Every modular product is one 64×64→128-bit multiply plus a Montgomery
//! reduction, which wasm32 executes as single `i64.mul_wide_u` instructions
//! when the `wide-arithmetic` target feature is on. Two primes whose product
//! is about 2^123 hold ± sums of two convolutions of up to 2^27 limbs below
//! 10^14 exactly (2·2^27·10^28 < 2^121.1; half the modulus is 2^122.0).
//! Transform lengths are 2^k or 3·2^k: one radix-3 pass, then radix-2.

use std::cell::RefCell;
use std::rc::Rc;

use crate::limb::{self, divrem_base, Limb, BASE};

/// x mod p for x < 2p, without a branch: the data are random, so a branch
/// would be mispredicted half the time.
#[inline(always)]
fn reduce_once(x: u64, p: u64) -> u64 {
    x.min(x.wrapping_sub(p))
}

/// A prime p < 2^62 with p − 1 divisible by a large power of two, and the
/// constants for Montgomery arithmetic modulo p (R = 2^64).
struct Prime {
    p: u64,
    /// −p⁻¹ mod 2^64.
    neg_inv: u64,
    /// R² mod p, to bring values into Montgomery form.
    r2: u64,
    /// A generator of the multiplicative group mod p.
    generator: u64,
    /// The largest k with 2^k dividing p − 1.
    two_adicity: u32,
}

impl Prime {
    const fn new(p: u64, generator: u64) -> Prime {
        let mut inv: u64 = 1;
        let mut i = 0;
        while i < 7 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(p.wrapping_mul(inv)));
            i += 1;
        }
        let r = ((1u128 << 64) % p as u128) as u64;
        let r2 = ((r as u128 * r as u128) % p as u128) as u64;
        Prime {
            p,
            neg_inv: inv.wrapping_neg(),
            r2,
            generator,
            two_adicity: (p - 1).trailing_zeros(),
        }
    }

    /// a·b·R⁻¹ mod p, for a·b < p·R.
    #[inline(always)]
    fn mul(&self, a: u64, b: u64) -> u64 {
        reduce_once(self.mul_lazy(a, b), self.p)
    }

    /// a·b·R⁻¹ mod p, in [0, 2p), for a < 4p and b < p (so a·b < p·R
    /// since 4p < 2^64 = R).
    #[inline(always)]
    fn mul_lazy(&self, a: u64, b: u64) -> u64 {
        let t = a as u128 * b as u128;
        let m = (t as u64).wrapping_mul(self.neg_inv);
        ((t + m as u128 * self.p as u128) >> 64) as u64
    }

    #[inline(always)]
    fn add(&self, a: u64, b: u64) -> u64 {
        reduce_once(a + b, self.p)
    }

    #[inline(always)]
    fn sub(&self, a: u64, b: u64) -> u64 {
        // a − b wraps above 2^63 exactly when a < b; then adding p is right.
        let d = a.wrapping_sub(b);
        d.min(d.wrapping_add(self.p))
    }

    /// Montgomery form of x (x < p).
    fn to_mont(&self, x: u64) -> u64 {
        self.mul(x, self.r2)
    }

    /// x^e in Montgomery form, x given in Montgomery form.
    fn pow_mont(&self, mut x: u64, mut e: u64) -> u64 {
        let mut acc = self.to_mont(1);
        while e > 0 {
            if e & 1 == 1 {
                acc = self.mul(acc, x);
            }
            x = self.mul(x, x);
            e >>= 1;
        }
        acc
    }
}

/// Longest transform for which results are exact: 2·n·(B−1)² < p1·p2/2.
const MAX_LEN: usize = 1 << 27;

// p − 1 divisible by 3·2^53 for both, so transforms of length 2^k and 3·2^k
// exist (the latter waste less padding).
const P1: Prime = Prime::new(3_377_699_720_527_872_001, 26); // 375·2^53 + 1
const P2: Prime = Prime::new(3_188_548_536_178_311_169, 7); // 177·2^54 + 1

/// Twiddle factors in Montgomery form, laid out by level: entries
/// [h, 2h) hold w^j for j < h, where w is a primitive 2h-th root of unity.
/// One table serves every transform size up to its length.
struct Twiddles {
    forward: Vec<u64>,
    inverse: Vec<u64>,
}

impl Twiddles {
    fn new() -> Twiddles {
        Twiddles {
            forward: vec![0; 1],
            inverse: vec![0; 1],
        }
    }

    /// Makes the radix-2 tables cover transforms of length n (a power of two).
    fn ensure(&mut self, prime: &Prime, n: usize) {
        let mut h = self.forward.len();
        if h >= n {
            return;
        }
        assert!(
            n.trailing_zeros() <= prime.two_adicity,
            "transform too long"
        );
        self.forward.resize(n, 0);
        self.inverse.resize(n, 0);
        let g = prime.to_mont(prime.generator);
        while h < n {
            let w = prime.pow_mont(g, (prime.p - 1) / (2 * h as u64));
            let w_inv = prime.pow_mont(w, prime.p - 2);
            let (mut a, mut b) = (prime.to_mont(1), prime.to_mont(1));
            for j in 0..h {
                self.forward[h + j] = a;
                self.inverse[h + j] = b;
                a = prime.mul(a, w);
                b = prime.mul(b, w_inv);
            }
            h *= 2;
        }
    }
}

thread_local! {
    static TWIDDLES: RefCell<[Twiddles; 2]> = RefCell::new([Twiddles::new(), Twiddles::new()]);
}

/// Decimation-in-frequency transform: natural order in, bit-reversed out.
/// Values in [0, 2p) in and out (Harvey's lazy reduction: one conditional
/// subtraction per butterfly instead of three). Two radix-2 levels are fused
/// into one pass over the data where possible (same arithmetic, half the
/// loads and stores).
fn forward(prime: &Prime, a: &mut [u64], tw: &[u64]) {
    let n = a.len();
    let p2 = 2 * prime.p;
    let mut h = n / 2;
    while h >= 2 {
        // Levels h and h/2 together, on blocks of 4q = 2h.
        let q = h / 2;
        let (w1, w2) = (&tw[h..2 * h], &tw[q..h]);
        for block in a.chunks_exact_mut(4 * q) {
            let (b01, b23) = block.split_at_mut(2 * q);
            let (b0, b1) = b01.split_at_mut(q);
            let (b2, b3) = b23.split_at_mut(q);
            for j in 0..q {
                let (x0, x1, x2, x3) = (b0[j], b1[j], b2[j], b3[j]);
                let y0 = reduce_once(x0 + x2, p2);
                let y2 = prime.mul_lazy(x0 + p2 - x2, w1[j]);
                let y1 = reduce_once(x1 + x3, p2);
                let y3 = prime.mul_lazy(x1 + p2 - x3, w1[j + q]);
                b0[j] = reduce_once(y0 + y1, p2);
                b1[j] = prime.mul_lazy(y0 + p2 - y1, w2[j]);
                b2[j] = reduce_once(y2 + y3, p2);
                b3[j] = prime.mul_lazy(y2 + p2 - y3, w2[j]);
            }
        }
        h /= 4;
    }
    if h == 1 {
        for pair in a.chunks_exact_mut(2) {
            let (u, v) = (pair[0], pair[1]);
            pair[0] = reduce_once(u + v, p2);
            pair[1] = reduce_once(u + p2 - v, p2);
        }
    }
}

/// Decimation-in-time inverse transform (unscaled): bit-reversed in, natural
/// out, values in [0, 2p) in and out; levels fused in pairs like [`forward`].
fn inverse(prime: &Prime, a: &mut [u64], tw: &[u64]) {
    let n = a.len();
    let p2 = 2 * prime.p;
    let mut h = 1;
    if n.trailing_zeros() % 2 == 1 {
        for pair in a.chunks_exact_mut(2) {
            let (u, v) = (pair[0], pair[1]);
            pair[0] = reduce_once(u + v, p2);
            pair[1] = reduce_once(u + p2 - v, p2);
        }
        h = 2;
    }
    while h < n {
        // Levels h and 2h together, on blocks of 4h.
        let q = h;
        let (w1, w2) = (&tw[2 * q..4 * q], &tw[q..2 * q]);
        for block in a.chunks_exact_mut(4 * q) {
            let (b01, b23) = block.split_at_mut(2 * q);
            let (b0, b1) = b01.split_at_mut(q);
            let (b2, b3) = b23.split_at_mut(q);
            for j in 0..q {
                let (x0, x1, x2, x3) = (b0[j], b1[j], b2[j], b3[j]);
                let v = prime.mul_lazy(x1, w2[j]);
                let (y0, y1) = (reduce_once(x0 + v, p2), reduce_once(x0 + p2 - v, p2));
                let v = prime.mul_lazy(x3, w2[j]);
                let (y2, y3) = (reduce_once(x2 + v, p2), reduce_once(x2 + p2 - v, p2));
                let v = prime.mul_lazy(y2, w1[j]);
                b0[j] = reduce_once(y0 + v, p2);
                b2[j] = reduce_once(y0 + p2 - v, p2);
                let v = prime.mul_lazy(y3, w1[j + q]);
                b1[j] = reduce_once(y1 + v, p2);
                b3[j] = reduce_once(y1 + p2 - v, p2);
            }
        }
        h *= 4;
    }
}

/// Forward transforms of one number modulo both primes, at a given length.
pub(crate) struct Spectrum {
    residues: [Vec<u64>; 2],
}

impl Spectrum {
    /// Transforms `x` zero-padded to `n` (a power of two, at least as long
    /// as any product it will take part in).
    pub(crate) fn new(x: &[Limb], n: usize) -> Spectrum {
        debug_assert!(n.is_power_of_two() && x.len() <= n);
        TWIDDLES.with(|t| {
            let mut t = t.borrow_mut();
            let residues = [(&P1, 0), (&P2, 1)].map(|(prime, i)| {
                t[i].ensure(prime, pow2_part(n));
                let mut v = vec![0u64; n];
                v[..x.len()].copy_from_slice(x);
                forward_mixed(prime, &mut v, &t[i].forward);
                v
            });
            Spectrum { residues }
        })
    }

    fn len(&self) -> usize {
        self.residues[0].len()
    }
}

/// The transform length for a product of `len` limbs: the least 2^k or
/// 3·2^k that holds it.
pub(crate) fn transform_len(len: usize) -> usize {
    let pow2 = len.next_power_of_two();
    if pow2 >= 4 && pow2 / 4 * 3 >= len {
        pow2 / 4 * 3
    } else {
        pow2
    }
}

/// The power-of-two factor of a transform length.
fn pow2_part(n: usize) -> usize {
    if n.is_power_of_two() {
        n
    } else {
        n / 3
    }
}

/// Constants of the radix-3 pass of a length-n transform (n = 3m) modulo
/// `prime`, in Montgomery form: w^j and w^2j for j < m (w a primitive n-th
/// root, or its inverse), −1/2 and (w3 − w3²)/2 for the cube root w3 = w^m.
struct Radix3 {
    n: usize,
    inverse: bool,
    /// w^j, w^2j interleaved.
    twiddles: Vec<[u64; 2]>,
    half_neg: u64,
    c2: u64,
}

impl Radix3 {
    fn new(prime: &Prime, n: usize, inverse: bool) -> Radix3 {
        let m = n / 3;
        let g = prime.to_mont(prime.generator);
        let mut w = prime.pow_mont(g, (prime.p - 1) / n as u64);
        if inverse {
            w = prime.pow_mont(w, prime.p - 2);
        }
        let mut twiddles = Vec::with_capacity(m);
        let mut x = prime.to_mont(1);
        for _ in 0..m {
            twiddles.push([x, prime.mul(x, x)]);
            x = prime.mul(x, w);
        }
        // Here x = w^m, a primitive cube root of unity.
        let w3 = x;
        let w3_sq = prime.mul(w3, w3);
        let half = prime.pow_mont(prime.to_mont(2), prime.p - 2);
        let half_neg = prime.sub(0, half);
        let c2 = prime.mul(prime.sub(w3, w3_sq), half);
        Radix3 {
            n,
            inverse,
            twiddles,
            half_neg,
            c2,
        }
    }
}

thread_local! {
    /// Radix-3 constants per (prime, length, direction), built on first use.
    static RADIX3: RefCell<[Vec<Rc<Radix3>>; 2]> =
        const { RefCell::new([Vec::new(), Vec::new()]) };
}

fn radix3(prime: &Prime, n: usize, inverse: bool) -> Rc<Radix3> {
    let which = usize::from(prime.p != P1.p);
    RADIX3.with(|cache| {
        let mut cache = cache.borrow_mut();
        let list = &mut cache[which];
        if let Some(r) = list.iter().find(|r| r.n == n && r.inverse == inverse) {
            return r.clone();
        }
        let r = Rc::new(Radix3::new(prime, n, inverse));
        list.push(r.clone());
        r
    })
}

/// Forward transform of length 2^k or 3·2^k (output in a fixed permuted
/// order, which the inverse undoes).
fn forward_mixed(prime: &Prime, a: &mut [u64], tw: &[u64]) {
    let n = a.len();
    if n.is_power_of_two() {
        return forward(prime, a, tw);
    }
    // Radix-3 decimation in frequency: block s gets
    // w^(js)·(a0 + w3^s·a1 + w3^(2s)·a2), then each block a radix-2 DFT.
    let m = n / 3;
    let r3 = radix3(prime, n, false);
    let (a0, rest) = a.split_at_mut(m);
    let (a1, a2) = rest.split_at_mut(m);
    for j in 0..m {
        let (x0, x1, x2) = (a0[j], a1[j], a2[j]);
        let s = prime.add(x1, x2);
        let d = prime.sub(x1, x2);
        let base = prime.add(x0, prime.mul(s, r3.half_neg));
        let rot = prime.mul(d, r3.c2);
        let [w, w2] = r3.twiddles[j];
        a0[j] = prime.add(x0, s);
        a1[j] = prime.mul(prime.add(base, rot), w);
        a2[j] = prime.mul(prime.sub(base, rot), w2);
    }
    for block in a.chunks_exact_mut(m) {
        forward(prime, block, tw);
    }
}

/// Inverse of [`forward_mixed`], unscaled (the result is n times the input).
fn inverse_mixed(prime: &Prime, a: &mut [u64], tw: &[u64]) {
    let n = a.len();
    if n.is_power_of_two() {
        return inverse(prime, a, tw);
    }
    let m = n / 3;
    for block in a.chunks_exact_mut(m) {
        inverse(prime, block, tw);
    }
    let r3 = radix3(prime, n, true);
    let (a0, rest) = a.split_at_mut(m);
    let (a1, a2) = rest.split_at_mut(m);
    for j in 0..m {
        let [w, w2] = r3.twiddles[j];
        let x0 = reduce_once(a0[j], prime.p);
        let x1 = prime.mul(a1[j], w);
        let x2 = prime.mul(a2[j], w2);
        let s = prime.add(x1, x2);
        let d = prime.sub(x1, x2);
        let base = prime.add(x0, prime.mul(s, r3.half_neg));
        let rot = prime.mul(d, r3.c2);
        // With the inverse root, c2 has the opposite sign, so the
        // combination has the same shape as in the forward pass.
        a0[j] = prime.add(x0, s);
        a1[j] = prime.add(base, rot);
        a2[j] = prime.sub(base, rot);
    }
}

/// Σ ±a·b over `terms` (a, b, subtract), exactly, as sign and base-10^14
/// magnitude of `len` limbs (untrimmed). Every product must fit in the
/// spectra's length and |Σ| < B^len.
pub(crate) fn sum_of_products(
    terms: &[(&Spectrum, &Spectrum, bool)],
    len: usize,
) -> (bool, Vec<Limb>) {
    let n = terms[0].0.len();
    assert!(
        terms.len() <= 2 && n <= MAX_LEN,
        "product too long for exact NTT"
    );
    let residues = TWIDDLES.with(|t| {
        let t = t.borrow();
        [(&P1, 0), (&P2, 1)].map(|(prime, i)| {
            let mut acc = vec![0u64; n];
            for &(a, b, subtract) in terms {
                let (a, b) = (&a.residues[i], &b.residues[i]);
                for ((x, &y), &z) in acc.iter_mut().zip(a).zip(b) {
                    let p = prime.mul(y, z);
                    *x = if subtract {
                        prime.sub(*x, p)
                    } else {
                        prime.add(*x, p)
                    };
                }
            }
            inverse_mixed(prime, &mut acc, &t[i].inverse);
            // Pointwise products of normal-form values carry a factor R⁻¹;
            // scaling by n⁻¹·R² (itself in Montgomery form, n⁻¹·R) undoes it.
            let n_inv = prime.pow_mont(prime.to_mont(n as u64), prime.p - 2);
            let scale = prime.mul(n_inv, prime.r2);
            for x in acc.iter_mut() {
                *x = prime.mul(*x, scale);
            }
            acc
        })
    });
    let [c1, c2] = residues;
    // CRT: v = x1 + p1·((x2 − x1)·p1⁻¹ mod p2) ∈ [0, p1·p2); values above
    // half the modulus stand for negative coefficients.
    let p1_inv = P2.pow_mont(P2.to_mont(P1.p % P2.p), P2.p - 2);
    let modulus = P1.p as u128 * P2.p as u128;
    let mut out: Vec<Limb> = Vec::with_capacity(len + 1);
    let mut carry: i128 = 0;
    for i in 0..len.min(n) {
        let (x1, x2) = (c1[i], c2[i]);
        let k = P2.mul(P2.sub(x2, x1 % P2.p), p1_inv);
        let v = x1 as u128 + P1.p as u128 * k as u128;
        let c = if v > modulus / 2 {
            -((modulus - v) as i128)
        } else {
            v as i128
        };
        let t = c + carry;
        let (q, r) = divrem_base(t.unsigned_abs());
        let (q, r) = match (t < 0, r) {
            (false, _) => (q as i128, r),
            (true, 0) => (-(q as i128), 0),
            (true, r) => (-(q as i128) - 1, BASE - r),
        };
        out.push(r);
        carry = q;
    }
    out.resize(len, 0);
    if carry >= 0 {
        debug_assert_eq!(carry, 0);
        (false, out)
    } else {
        // out + carry·B^len < 0: its magnitude is |carry|·B^len − out.
        let mut top = vec![0; len];
        top.extend(limb::from_u128(carry.unsigned_abs()));
        let mut out = out;
        limb::trim(&mut out);
        let mut mag = limb::sub(&top, &out);
        mag.resize(len, 0);
        (true, mag)
    }
}

/// The product of two base-10^14 numbers (little-endian limbs), untrimmed,
/// of length a.len() + b.len().
pub(crate) fn mul(a: &[Limb], b: &[Limb]) -> Vec<Limb> {
    let len = a.len() + b.len();
    let n = transform_len(len);
    let fa = Spectrum::new(a, n);
    let (_, out) = if std::ptr::eq(a, b) {
        sum_of_products(&[(&fa, &fa, false)], len)
    } else {
        let fb = Spectrum::new(b, n);
        sum_of_products(&[(&fa, &fb, false)], len)
    };
    out
}

#[cfg(test)]
mod tests {
    use super::transform_len;

    #[test]
    fn transform_lengths() {
        assert_eq!(transform_len(96), 96);
        assert_eq!(transform_len(97), 128);
        assert_eq!(transform_len(129), 192);
        assert_eq!(transform_len(1 << 20), 1 << 20);
        assert_eq!(transform_len((1 << 20) + 1), 3 << 19);
    }
}
