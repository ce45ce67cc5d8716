"""The original picrunch service's algorithm in CPython: Machin's formula
pi = 4*(4*arctan(1/5) - arctan(1/239)) in fixed-point Python integers with guard digits
(Don Cross's picrunch), as `functions/pi-python/picrunch.py` has it (the code pi v0 runs).
`cargo xtask bench` times it against pi v1 (the same algorithm in Rust, native and in wasm)
at the same number of digits.

usage: python3 bench/picrunch.py NDIGITS  → prints "seconds sha256-of-decimals"
"""
import hashlib
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "functions", "pi-python"))
from picrunch import pi_string  # noqa: E402


if __name__ == "__main__":
    n = int(sys.argv[1])
    start = time.perf_counter()
    decimals = pi_string(n)[2:]  # the decimals after "3."
    took = time.perf_counter() - start
    print(f"{took:.4f} {hashlib.sha256(decimals.encode()).hexdigest()}")
