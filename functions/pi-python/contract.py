"""The /api/v0/pi HTTP contract of fnhost's pi functions, in Python: the same answers, byte for
byte, as the Rust versions (functions/pi/core/src/http.rs), independent of any HTTP library.

- GET ?ndigits=N -> 200 {"ndigits":N,"pi":"3.…"} (keys in that order, N decimals truncated;
  22 without ndigits), Cache-Control immutable and ETag "pi-N"; If-None-Match -> 304.
- Bad input -> 400 {"error": "…"} naming the parameter and the rule; HEAD like GET without a
  body; other methods -> 405 with Allow: GET, HEAD. Errors are never cached.
"""
import json
from urllib.parse import parse_qsl

from picrunch import pi_string

PARAM = "ndigits"
DEFAULT_NDIGITS = 22
DEFAULT_MAX_NDIGITS = 1_000_000
CACHE_IMMUTABLE = "public, max-age=31536000, immutable"
MAX_ECHO_CHARS = 40


def quote(s):
    """`s` as a JSON string, cut to MAX_ECHO_CHARS characters."""
    cut = s[:MAX_ECHO_CHARS]
    if len(cut) < len(s):
        cut += "…"
    return json.dumps(cut, ensure_ascii=False)


def error_reply(status, message):
    body = json.dumps({"error": message}, ensure_ascii=False, separators=(",", ":"))
    headers = {"content-type": "application/json", "cache-control": "no-store"}
    return status, headers, body.encode()


def parse_digits(s):
    """A string of ASCII digits as an int, or None."""
    if not s or not all("0" <= c <= "9" for c in s):
        return None
    return int(s)


def max_ndigits_setting(value):
    """The maximum ndigits from the deployment's setting (None: the default); (max, None) or
    (None, error reply)."""
    if value is None:
        return DEFAULT_MAX_NDIGITS, None
    n = parse_digits(value)
    if n is None:
        return None, error_reply(
            500,
            "invalid deployment setting: the max_ndigits variable must be a non-negative "
            f"integer, got {quote(value)}",
        )
    return n, None


def parse_query(query, max_ndigits):
    """(ndigits, None) or (None, the error message for the client)."""
    ndigits = None
    for name, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        if name != PARAM:
            return None, f"unknown query parameter {quote(name)}: the only parameter is {PARAM}"
        if ndigits is not None:
            return None, f"{PARAM} must be given at most once"
        ndigits = value
    if ndigits is None:
        return DEFAULT_NDIGITS, None
    if ndigits == "":
        return None, f"{PARAM} must be a non-negative integer, got an empty value"
    if not all("0" <= c <= "9" for c in ndigits):
        return None, f"{PARAM} must be a non-negative integer (decimal digits only), got {quote(ndigits)}"
    n = parse_digits(ndigits)
    if n > max_ndigits:
        return None, f"{PARAM} must be at most {max_ndigits}, got {quote(ndigits)}"
    return n, None


def etag_matches(header, etag):
    for candidate in (c.strip() for c in header.split(",")):
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def respond(method, query, if_none_match, max_ndigits):
    """(status, headers, body) for one request; `query` without the "?" (or None)."""
    if method not in ("GET", "HEAD"):
        status, headers, body = error_reply(
            405, f"method {quote(method)} is not allowed: use GET or HEAD"
        )
        headers["allow"] = "GET, HEAD"
        return status, headers, body
    head = method == "HEAD"
    ndigits, error = parse_query(query or "", max_ndigits)
    if error is not None:
        status, headers, body = error_reply(400, error)
        return status, headers, b"" if head else body
    etag = f'"pi-{ndigits}"'
    headers = {"cache-control": CACHE_IMMUTABLE, "etag": etag}
    if if_none_match is not None and etag_matches(if_none_match, etag):
        return 304, headers, b""
    headers = {"content-type": "application/json", **headers}
    body = b"" if head else f'{{"ndigits":{ndigits},"pi":"{pi_string(ndigits)}"}}'.encode()
    return 200, headers, body
