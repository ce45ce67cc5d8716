"""The original picrunch service's algorithm in CPython: Machin's formula
pi = 4*(4*arctan(1/5) - arctan(1/239)) in fixed-point Python integers with guard digits
(Don Cross's picrunch). `cargo xtask bench` times it against pi v1 (the same algorithm in Rust,
native and in wasm) at the same number of digits.

usage: python3 bench/picrunch.py NDIGITS  → prints "seconds sha256-of-decimals"
"""
import hashlib
import sys
import time

GUARD = 10


def arctan_inverse(x, unity):
    """arctan(1/x) * unity, by the alternating Taylor series."""
    total = term = unity // x
    x2 = x * x
    n, sign = 3, -1
    while term:
        term //= x2
        total += sign * (term // n)
        sign, n = -sign, n + 2
    return total


def pi_decimals(ndigits):
    unity = 10 ** (ndigits + GUARD)
    pi = 4 * (4 * arctan_inverse(5, unity) - arctan_inverse(239, unity))
    digits = str(pi // 10**GUARD)
    return digits[1:]  # the decimals after "3"


if __name__ == "__main__":
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(0)  # Python >= 3.11 limits int -> str to 4300 digits
    n = int(sys.argv[1])
    start = time.perf_counter()
    decimals = pi_decimals(n)
    took = time.perf_counter() - start
    print(f"{took:.4f} {hashlib.sha256(decimals.encode()).hexdigest()}")
