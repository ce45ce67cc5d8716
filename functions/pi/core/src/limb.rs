//! The representation every π-digit computation in base 10^14 shares: natural
//! numbers as little-endian vectors of `u64` limbs, each below [`BASE`], the
//! last (most significant) non-zero, zero as the empty vector; and the
//! carry-level primitives on it that both the NTT ([`crate::ntt`]) and the
//! arithmetic built on it ([`crate::decimal`]) use: normalising, building from
//! a machine integer, comparing, adding, subtracting, and splitting a wide
//! value at the base. It depends on no other module of the crate.

use std::cmp::Ordering;

/// The limb radix, 10^14: the largest power of ten for which the NTT's two
/// primes (product ≈ 2^123) hold ± sums of two convolutions of up to 2^27
/// limbs exactly (2·n·B² < 2^121.1, see [`crate::ntt`]), and whose square
/// fits easily in a u128.
pub(crate) const BASE: u64 = 100_000_000_000_000;
/// Decimal digits per limb.
pub(crate) const LIMB_DIGITS: usize = 14;

pub(crate) type Limb = u64;
pub(crate) type Nat = Vec<Limb>;

pub(crate) fn trim(v: &mut Nat) {
    while v.last() == Some(&0) {
        v.pop();
    }
}

pub(crate) fn from_u128(mut x: u128) -> Nat {
    let mut v = Vec::new();
    while x > 0 {
        v.push((x % BASE as u128) as Limb);
        x /= BASE as u128;
    }
    v
}

pub(crate) fn cmp(a: &[Limb], b: &[Limb]) -> Ordering {
    a.len()
        .cmp(&b.len())
        .then_with(|| a.iter().rev().cmp(b.iter().rev()))
}

pub(crate) fn add(a: &[Limb], b: &[Limb]) -> Nat {
    let (a, b) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    let mut r = Vec::with_capacity(a.len() + 1);
    let mut carry = 0;
    for (i, &x) in a.iter().enumerate() {
        let mut s = x + carry + b.get(i).copied().unwrap_or(0);
        carry = 0;
        if s >= BASE {
            s -= BASE;
            carry = 1;
        }
        r.push(s);
    }
    if carry > 0 {
        r.push(carry);
    }
    r
}

/// a − b, for a ≥ b.
pub(crate) fn sub(a: &[Limb], b: &[Limb]) -> Nat {
    debug_assert!(cmp(a, b) != Ordering::Less);
    let mut r = Vec::with_capacity(a.len());
    let mut borrow = 0;
    for (i, &x) in a.iter().enumerate() {
        let y = b.get(i).copied().unwrap_or(0) + borrow;
        if x >= y {
            r.push(x - y);
            borrow = 0;
        } else {
            r.push(x + BASE - y);
            borrow = 1;
        }
    }
    trim(&mut r);
    r
}

/// q, r with v = q·B + r, for v < 2^126, by 64-bit divisions by a constant
/// (which compile to a multiply) on 16-bit pieces, instead of a call to a
/// 128-bit division routine.
#[inline(always)]
pub(crate) fn divrem_base(v: u128) -> (u128, Limb) {
    let hi = (v >> 64) as u64;
    let lo = v as u64;
    let (q_hi, mut r) = (hi / BASE, hi % BASE);
    let mut q_lo = 0u64;
    // r < B < 2^47, so r·2^16 + piece < 2^63.
    for shift in [48, 32, 16, 0] {
        let t = (r << 16) | ((lo >> shift) & 0xffff);
        q_lo = (q_lo << 16) | (t / BASE);
        r = t % BASE;
    }
    (((q_hi as u128) << 64) | q_lo as u128, r)
}
