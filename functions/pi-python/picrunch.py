"""Machin's formula, as the data scientist wrote it for the original picrunch service (Don
Cross's picrunch): pi = 4*(4*arctan(1/5) - arctan(1/239)) in fixed-point Python integers with
guard digits. Plain Python: the same file runs under CPython and, compiled into the component
with componentize-py, on fnhost.
"""
import sys

try:
    # CPython >= 3.12 converts ints of more than a few thousand digits to text with this
    # module; componentize-py bundles only modules the code imports.
    import _pylong  # noqa: F401
except ImportError:  # CPython < 3.12
    pass

GUARD = 10

if hasattr(sys, "set_int_max_str_digits"):
    sys.set_int_max_str_digits(0)  # Python >= 3.11 limits int -> str to 4300 digits


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


def pi_string(ndigits):
    """pi with `ndigits` decimals, truncated: "3" for 0, "3.14" for 2."""
    unity = 10 ** (ndigits + GUARD)
    pi = 4 * (4 * arctan_inverse(5, unity) - arctan_inverse(239, unity))
    digits = str(pi // 10**GUARD)
    return digits if ndigits == 0 else digits[0] + "." + digits[1:]
