//! Algorithm v1, after Don Cross's `picrunch`: Machin's formula
//! π = 4·(4·arctan(1/5) − arctan(1/239)), each arctangent summed from its
//! Taylor series in fixed point (an integer scaled by 10^digits) with
//! `num-bigint`, one small-integer division per step.

use num_bigint::BigUint;
use num_traits::Zero;

/// arctan(1/x) · unity, truncating at each step (error ≤ 2 units per term).
fn arctan_inv(x: u32, unity: &BigUint) -> BigUint {
    let x2 = x * x;
    let mut power = unity / x; // unity / x^(2k+1)
    let mut positive = power.clone();
    let mut negative = BigUint::zero();
    let mut k: u32 = 1;
    loop {
        power /= x2;
        if power.is_zero() {
            break;
        }
        let term = &power / (2 * k + 1);
        if k % 2 == 1 {
            negative += term;
        } else {
            positive += term;
        }
        k += 1;
    }
    positive - negative
}

/// Decimal places at the end of the result that the truncation error may
/// reach: each series step is off by less than 2 units, arctan(1/5) takes
/// fewer than `digits`/1.39 steps and is weighted 16, arctan(1/239) 4, so the
/// total stays below 32·digits units.
fn error_digits(digits: usize) -> usize {
    ((32 * digits.max(1)) as f64).log10().ceil() as usize + 1
}

/// Reliable digits kept beyond those asked for, for the caller's check that
/// truncating at `ndigits` is not thrown off by a run of 9s or 0s.
const MARGIN: usize = 12;

/// π as a decimal integer string "31415…" with more than `ndigits` digits
/// after the 3, and how many of its trailing digits may be wrong (the value
/// is within one unit of the last reliable digit).
pub(crate) fn pi_digits(ndigits: usize) -> (String, usize) {
    let unreliable = error_digits(ndigits + MARGIN + 8);
    let digits = ndigits + MARGIN + unreliable;
    let unity = BigUint::from(10u32).pow(digits as u32);
    let pi = (arctan_inv(5, &unity) * 4u32 - arctan_inv(239, &unity)) * 4u32;
    let s = pi.to_str_radix(10);
    (s, unreliable)
}
