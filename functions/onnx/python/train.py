#!/usr/bin/env python3
"""Train the reference scikit-learn models and export each as an ONNX model directory.

For every estimator in MODELS this writes DIR/NAME/model.onnx and DIR/NAME/model.json (the
`fnhost-onnx-model/1` metadata described in functions/onnx/README.md), which is exactly what the
onnx-model component serves from the directory the manifest mounts at /model.

Training is seeded (random_state=0), on data shipped inside scikit-learn (Iris, diabetes), with
the library versions of requirements.txt, one BLAS thread and the same BLAS kernels on every x86-64
CPU with AVX2 (`pin_blas_kernels`), and the export is normalised, so the files are meant to be
byte-identical from run to run and from machine to machine. conformance.py does not rely on that:
it checks the very estimator that was exported (--with-estimator keeps it as estimator.joblib).

    python train.py --out DIR [--only NAME ...] [--version V] [--with-estimator]
    python train.py --into DIR --only NAME [--version V]    # DIR/model.onnx, DIR/model.json
    python train.py --list
"""

import argparse
import hashlib
import json
import os
import platform
import sys


def pin_blas_kernels():
    """OpenBLAS's AVX2 kernels on any x86-64 CPU that has AVX2, before numpy and scipy load it.

    OpenBLAS picks its kernels by CPU when it loads: on a CPU with AVX-512 it takes the SkylakeX
    ones, which round sums differently, and the fitted coefficients (hence model.onnx) changed
    in their fourth digit from one machine to the next. OPENBLAS_CORETYPE set by the caller wins.
    """
    if platform.machine() not in ("x86_64", "AMD64"):
        return
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        return
    if "avx2" in flags and "fma" in flags:
        os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")


pin_blas_kernels()

import joblib  # noqa: E402  (numpy, scipy and their OpenBLAS load from here on)
import numpy as np
import onnx
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

FORMAT = "fnhost-onnx-model/1"
SEED = 0
INPUT = "input"

# The iris contract of /api/v01/classify (functions/iris/README.md): four measurements in cm,
# each > 0 and <= 100, answered as {"species": ..., "probabilities": {...}, "model": ...}.
IRIS_FEATURES = [
    {"name": name, "unit": "cm", "greater_than": 0, "at_most": 100}
    for name in ("sl", "sw", "pl", "pw")
]
IRIS_CLASSES = ["Iris setosa", "Iris versicolor", "Iris virginica"]

# name → (data set, estimator factory). Hyper-parameters are scikit-learn's defaults except
# where a default does not converge on raw Iris measurements (max_iter).
MODELS = {
    "iris-logistic-regression": ("iris", lambda: LogisticRegression(max_iter=1000)),
    "iris-decision-tree": ("iris", lambda: DecisionTreeClassifier(random_state=SEED)),
    "iris-random-forest": ("iris", lambda: RandomForestClassifier(random_state=SEED)),
    "iris-gradient-boosting": ("iris", lambda: GradientBoostingClassifier(random_state=SEED)),
    "iris-mlp": (
        "iris",
        lambda: MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=SEED),
    ),
    "diabetes-gradient-boosting": (
        "diabetes",
        lambda: GradientBoostingRegressor(random_state=SEED),
    ),
}


def dataset(name):
    """(X as float32, y, features metadata, classes or None, label field, description)."""
    if name == "iris":
        data = load_iris()
        return (
            data.data.astype(np.float32),
            data.target,
            IRIS_FEATURES,
            IRIS_CLASSES,
            "species",
            "sklearn.datasets.load_iris (Fisher's Iris, 150 rows)",
        )
    if name == "diabetes":
        data = load_diabetes()
        return (
            data.data.astype(np.float32),
            data.target,
            [{"name": n} for n in data.feature_names],
            None,
            "progression",
            "sklearn.datasets.load_diabetes (442 rows, scaled features)",
        )
    raise ValueError(f"unknown data set {name}")


def export(estimator, n_features):
    """The fitted estimator as ONNX: one FP32 input named INPUT, outputs `label` and
    `probabilities` (classifiers, as plain tensors: no ZipMap) or `variable` (regressors)."""
    options = {id(estimator): {"zipmap": False}} if hasattr(estimator, "classes_") else None
    return to_onnx(
        estimator,
        initial_types=[(INPUT, FloatTensorType([None, n_features]))],
        options=options,
        target_opset=17,
    )


def fitted(name):
    """Model NAME's estimator, fitted on its data set."""
    data_name, make = MODELS[name]
    X, y, *_ = dataset(data_name)
    # One BLAS thread: a multi-threaded reduction may sum in a varying order.
    with threadpool_limits(limits=1):
        return make().fit(X, y)


def onnx_bytes_of(name, estimator, n_features):
    """The served file of model NAME: the export, its graph named NAME, its operator-set imports
    once per domain in a fixed order (skl2onnx lists them in set order, which changes with
    Python's per-process hash seed, so the same model gave files with different digests)."""
    model = export(estimator, n_features)
    model.graph.name = name
    versions = {}
    for o in model.opset_import:
        versions[o.domain] = max(o.version, versions.get(o.domain, 0))
    del model.opset_import[:]
    for domain, version in sorted(versions.items()):
        model.opset_import.add(domain=domain, version=version)
    return model.SerializeToString(), [o.name for o in model.graph.output]


def train(name, version):
    """Fits model NAME; returns (onnx bytes, metadata dict, fitted estimator)."""
    X, y, features, classes, label_field, data_description = dataset(MODELS[name][0])
    estimator = fitted(name)
    onnx_bytes, output_names = onnx_bytes_of(name, estimator, X.shape[1])
    if classes is not None:
        outputs = {"label": output_names[0], "probabilities": output_names[1]}
    else:
        outputs = {"value": output_names[0]}
    metadata = {
        "format": FORMAT,
        "name": name,
        "version": version,
        "model_sha256": hashlib.sha256(onnx_bytes).hexdigest(),
        "input": INPUT,
        "outputs": outputs,
        "features": features,
        **({"classes": classes} if classes is not None else {}),
        "label_field": label_field,
        "training": {
            "estimator": type(estimator).__name__,
            "parameters": {k: v for k, v in sorted(estimator.get_params().items())
                           if isinstance(v, (int, float, str, bool, type(None)))},
            "data": data_description,
            "train_score": float(estimator.score(X, y)),
            "scikit_learn": sklearn.__version__,
            "skl2onnx": skl2onnx.__version__,
            "onnx": onnx.__version__,
        },
    }
    return onnx_bytes, metadata, estimator


def write_atomically(path, data):
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


ESTIMATOR_FILE = "estimator.joblib"


def write_model_dir(directory, onnx_bytes, metadata, estimator=None):
    """model.onnx first, then model.json: the component answers 503 while their digests differ.
    With an estimator, also ESTIMATOR_FILE (for conformance.py; the component ignores it)."""
    os.makedirs(directory, exist_ok=True)
    if estimator is not None:
        joblib.dump(estimator, os.path.join(directory, ESTIMATOR_FILE))
    write_atomically(os.path.join(directory, "model.onnx"), onnx_bytes)
    text = json.dumps(metadata, indent=2, sort_keys=False) + "\n"
    write_atomically(os.path.join(directory, "model.json"), text.encode())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", help="directory to write NAME/model.onnx and NAME/model.json into")
    parser.add_argument("--into", help="with one --only NAME: write model.onnx and model.json "
                        "straight into this directory (a directory a manifest mounts)")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(MODELS),
                        help="train only these models (default: all)")
    parser.add_argument("--version", default="1", help="model version recorded in model.json")
    parser.add_argument("--list", action="store_true", help="print the model names and exit")
    parser.add_argument("--with-estimator", action="store_true",
                        help=f"also write the fitted estimator as {ESTIMATOR_FILE} (conformance.py "
                        "compares against it)")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(MODELS))
        return 0
    if bool(args.out) == bool(args.into):
        parser.error("give exactly one of --out and --into")
    if args.into and len(args.only or []) != 1:
        parser.error("--into needs exactly one --only NAME")
    for name in args.only or MODELS:
        onnx_bytes, metadata, estimator = train(name, args.version)
        directory = args.into or os.path.join(args.out, name)
        write_model_dir(directory, onnx_bytes, metadata,
                        estimator if args.with_estimator else None)
        print(f"{directory}: {metadata['training']['estimator']}, "
              f"train score {metadata['training']['train_score']:.4f}, "
              f"{len(onnx_bytes)} bytes, sha256 {metadata['model_sha256'][:12]}…")
    return 0


if __name__ == "__main__":
    sys.exit(main())
