#!/usr/bin/env python3
"""Regenerate pi-1m.txt: the first 1,000,000 decimals of pi after "3.", no newline.

The digits are truncated (never rounded). Needs `pip install mpmath gmpy2`
(gmpy2 is optional but makes it take about a second instead of a minute).

Usage: python3 gen_pi.py [NDIGITS] > pi-1m.txt
"""
import sys

import mpmath


def pi_decimals(ndigits: int) -> str:
    # Compute with guard digits, then cut the string: mpmath's own rounding of
    # the last printed digit is not used.
    mpmath.mp.dps = ndigits + 30
    s = mpmath.nstr(+mpmath.pi, ndigits + 20, strip_zeros=False)
    assert s.startswith("3."), s[:10]
    return s[2 : 2 + ndigits]


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    sys.stdout.write(pi_decimals(n))
