#!/usr/bin/env python3
"""Prove that fnhost serves exactly what scikit-learn and onnxruntime compute.

For each model directory DIR/NAME written by train.py, this script

1. loads the fitted estimator train.py kept (`train.py --with-estimator` writes
   DIR/NAME/estimator.joblib) and checks that exporting it again gives the served file byte for
   byte (the sha256 recorded in model.json), so scikit-learn's answers are the served model's;
2. runs every row of the training data through scikit-learn (`predict`, `predict_proba`),
   through onnxruntime on DIR/NAME/model.onnx, and through fnhost's Open Inference Protocol
   endpoint URL/v2/models/NAME/infer: once as one batch, and row by row;
3. requires every label to be equal, every probability within 1e-5, and every regression value
   within 1e-5 relative, between fnhost and each of the other two.

It exits 0 when every model conforms, and 1 with one line per disagreement otherwise.

    python conformance.py --models DIR --url http://127.0.0.1:PORT [--only NAME ...]
"""

import argparse
import hashlib
import json
import os
import sys
import urllib.error
import urllib.request

import joblib
import numpy as np
import onnxruntime

import train

PROBABILITY_TOLERANCE = 1e-5
RELATIVE_TOLERANCE = 1e-5
SHOWN = 10


def infer(url, name, rows):
    """POSTs rows as one FP32 [n, width] tensor; returns {output name: numpy array}."""
    body = {
        "inputs": [
            {
                "name": train.INPUT,
                "shape": list(rows.shape),
                "datatype": "FP32",
                "data": rows.astype(np.float32).ravel().tolist(),
            }
        ]
    }
    request = urllib.request.Request(
        f"{url}/v2/models/{name}/infer",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{name}: fnhost answered {e.code}: {e.read().decode(errors='replace')}")
    if answer.get("model_name") != name:
        raise SystemExit(f"{name}: fnhost answered for model {answer.get('model_name')!r}")
    return {
        o["name"]: np.array(o["data"]).reshape(o["shape"]) for o in answer["outputs"]
    }


def fnhost_outputs(url, name, X):
    """fnhost's outputs for every row, {"batch": …, "row by row": …}: all rows in one request,
    and one request per row (a batch runs other kernels, so both are checked)."""
    batch = infer(url, name, X)
    single = [infer(url, name, X[i : i + 1]) for i in range(len(X))]
    return {
        "batch": batch,
        "row by row": {key: np.concatenate([s[key] for s in single]) for key in batch},
    }


def compare(name, what, ours, theirs, problems):
    """Appends a line per row where fnhost's `ours` and `theirs` disagree beyond tolerance."""
    if what == "label":
        bad = np.flatnonzero(ours != theirs)
        detail = lambda i: f"{ours[i]} vs {theirs[i]}"
    elif what == "probabilities":
        diff = np.abs(ours - theirs).max(axis=1)
        bad = np.flatnonzero(diff > PROBABILITY_TOLERANCE)
        detail = lambda i: f"max |diff| {diff[i]:.3g}: {ours[i].tolist()} vs {theirs[i].tolist()}"
    else:
        rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), np.finfo(float).tiny)
        bad = np.flatnonzero(rel > RELATIVE_TOLERANCE)
        detail = lambda i: f"relative diff {rel[i]:.3g}: {ours[i]} vs {theirs[i]}"
    for i in bad[:SHOWN]:
        problems.append(f"{name}: row {i}: {what} {detail(i)}")
    if len(bad) > SHOWN:
        problems.append(f"{name}: … and {len(bad) - SHOWN} more rows disagree on {what}")
    return len(bad)


def check(models_dir, url, name):
    """Returns the disagreements for model NAME (empty when it conforms)."""
    directory = os.path.join(models_dir, name)
    with open(os.path.join(directory, "model.json")) as f:
        metadata = json.load(f)
    estimator_file = os.path.join(directory, train.ESTIMATOR_FILE)
    if not os.path.exists(estimator_file):
        return [f"{name}: no {estimator_file}; write the models with train.py --with-estimator"]
    estimator = joblib.load(estimator_file)
    X, _, _, classes, _, _ = train.dataset(train.MODELS[name][0])
    exported, _ = train.onnx_bytes_of(name, estimator, X.shape[1])
    digest = hashlib.sha256(exported).hexdigest()
    if digest != metadata["model_sha256"]:
        return [f"{name}: exporting {estimator_file} gives sha256 {digest}, "
                f"but model.json describes {metadata['model_sha256']}: not the same model"]
    session = onnxruntime.InferenceSession(os.path.join(directory, "model.onnx"))
    runtime = dict(zip([o.name for o in session.get_outputs()],
                       session.run(None, {train.INPUT: X})))
    problems = []
    for mode, served in fnhost_outputs(url, name, X).items():
        if classes is not None:
            label = metadata["outputs"]["label"]
            probabilities = metadata["outputs"]["probabilities"]
            ours_label = served[label].astype(np.int64)
            ours_probabilities = served[probabilities].astype(np.float64)
            for source, (their_label, their_probabilities) in {
                "scikit-learn": (estimator.predict(X), estimator.predict_proba(X)),
                "onnxruntime": (runtime[label], runtime[probabilities]),
            }.items():
                what = f"{name} ({mode}) vs {source}"
                compare(what, "label", ours_label, np.asarray(their_label), problems)
                compare(what, "probabilities", ours_probabilities,
                        np.asarray(their_probabilities, dtype=np.float64), problems)
        else:
            value = metadata["outputs"]["value"]
            ours = served[value].astype(np.float64).ravel()
            for source, theirs in {
                "scikit-learn": estimator.predict(X),
                "onnxruntime": runtime[value],
            }.items():
                compare(f"{name} ({mode}) vs {source}", "value", ours,
                        np.asarray(theirs, dtype=np.float64).ravel(), problems)
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", required=True, help="directory holding NAME/model.onnx")
    parser.add_argument("--url", required=True,
                        help="fnhost's base URL; NAME is served at URL/v2/models/NAME/infer")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(train.MODELS),
                        help="check only these models (default: all)")
    args = parser.parse_args(argv)
    failures = []
    for name in args.only or train.MODELS:
        problems = check(args.models, args.url.rstrip("/"), name)
        failures += problems
        print(f"{name}: {'conforms' if not problems else f'{len(problems)} problems'}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
