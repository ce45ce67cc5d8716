#!/usr/bin/env python3
"""Measure what fnhost's onnx component spends per request, as the guest reports it.

For each model NAME served at URL/v2/models/NAME (as conformance.py expects), sends REQUESTS
V2 inference requests of one row and of 100 rows, one after the other, and prints a Markdown
table of medians: the guest's `server-timing` (`load`, when the request loaded the model, and
`total`, the whole guest-side answer) and the client's round trip. Run it once against a
manifest with `instance_reuse = 1` (every request a fresh instance: every request loads) and
once with a large `instance_reuse` (the instance keeps its model) to see what caching saves.

    python measure.py --models DIR --url http://127.0.0.1:PORT [--requests 50] [--only NAME ...]
"""

import argparse
import json
import statistics
import time
import urllib.request

import numpy as np

import train


def timed_infer(url, name, rows):
    body = json.dumps({"inputs": [{"name": train.INPUT, "shape": list(rows.shape),
                                   "datatype": "FP32",
                                   "data": rows.astype(np.float32).ravel().tolist()}]}).encode()
    request = urllib.request.Request(f"{url}/v2/models/{name}/infer", data=body, method="POST",
                                     headers={"content-type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as response:
        response.read()
        timing = response.headers.get("server-timing", "")
    round_trip = (time.perf_counter() - started) * 1e3
    parts = dict(p.strip().split(";dur=") for p in timing.split(",") if ";dur=" in p)
    return {k: float(v) for k, v in parts.items()}, round_trip


def median(values):
    return f"{statistics.median(values):.3f}" if values else "–"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, help="directory holding NAME/model.onnx")
    parser.add_argument("--url", required=True)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(train.MODELS))
    args = parser.parse_args(argv)
    url = args.url.rstrip("/")
    print("| model | rows | requests that loaded | load (ms) | guest total (ms) | round trip (ms) |")
    print("|---|---|---|---|---|---|")
    for name in args.only or train.MODELS:
        X = train.dataset(train.MODELS[name][0])[0]
        for n in (1, 100):
            rows = np.resize(X, (n, X.shape[1]))
            timed_infer(url, name, rows)  # the first request after start-up is not counted
            samples = [timed_infer(url, name, rows) for _ in range(args.requests)]
            loads = [s["load"] for s, _ in samples if "load" in s]
            print(f"| {name} | {n} | {len(loads)}/{len(samples)} | {median(loads)} | "
                  f"{median([s['total'] for s, _ in samples])} | "
                  f"{median([rt for _, rt in samples])} |")


if __name__ == "__main__":
    main()
