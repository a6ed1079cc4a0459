"""The measurements that need TensorFlow, each run in a fresh subprocess by the bench.

``python -m bench.inprocess <command> ...`` prints one JSON object on its last line of stdout:

- ``prepare``: make the bench's model (``Dense`` weights ``[2, -1]``, bias ``3``, built by
  :func:`pipeline.training.fit.build_model`) and export it with :func:`pipeline.store.versions.export_version`
  unless a version is already there; prints the version directory.
- ``floor``: the in-process floor for a big ``:predict`` body: ``orjson.loads`` of the body + one
  signature call (on ``tf.constant`` of the parsed rows) + ``orjson.dumps`` of the output array,
  repeated for a duration; prints rows/s. A server that parses JSON straight into an array can beat it.
- ``train``: samples/s of ``pipeline.training.train`` (``--which pipeline``) or of a bare
  ``model.fit(x, y, batch_size=same, epochs=E)`` on the same data and model (``--which bare``).

A fresh process per measurement keeps one's warm caches and threads out of the other's numbers, and
keeps TensorFlow out of the bench's own process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

TRUE_W = (2.0, -1.0)
TRUE_B = 3.0


def latest_version_dir(base_path: Path) -> Path | None:
    """The highest version directory holding a ``saved_model.pb``, if any, by the project's one
    version-folder rule (:func:`pipeline.model_dir.version_dirs`), the one the server uses too."""
    from pipeline.model_dir import version_dirs

    try:
        versions = version_dirs(base_path)
    except OSError:
        return None
    return next((path for _, path in sorted(versions.items(), reverse=True)
                 if (path / "saved_model.pb").exists()), None)


def prepare(base_path: Path) -> dict[str, Any]:
    """Export the bench model under ``base_path`` once; later runs reuse it."""
    existing = latest_version_dir(base_path)
    if existing is not None:
        return {"version_dir": str(existing), "exported": False}
    import numpy as np

    from pipeline.store.versions import export_version
    from pipeline.training.fit import build_model

    model = build_model(len(TRUE_W), "adam", 0.05)
    model.get_layer("outputs").set_weights(
        [np.array([[w] for w in TRUE_W], dtype=np.float32), np.array([TRUE_B], dtype=np.float32)]
    )
    info = export_version(model, base_path)  # not a training run: no run record
    return {"version_dir": str(info.path), "exported": True}


def floor(model_dir: Path, body_path: Path, duration_s: float) -> dict[str, Any]:
    """Rows/s of parse + one signature call + serialise, in this process, no HTTP."""
    import orjson
    import tensorflow as tf

    signature = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    input_name = next(iter(signature.structured_input_signature[1]))
    body = body_path.read_bytes()

    def once() -> int:
        rows = orjson.loads(body)["instances"]
        outputs = signature(**{input_name: tf.constant(rows, dtype=tf.float32)})
        orjson.dumps({"predictions": next(iter(outputs.values())).numpy()}, option=orjson.OPT_SERIALIZE_NUMPY)
        return len(rows)

    once()  # warm-up: traces the concrete function for this batch size
    rows = calls = 0
    started = time.perf_counter()
    while calls < 3 or time.perf_counter() - started < duration_s:
        rows += once()
        calls += 1
    elapsed = time.perf_counter() - started
    return {"rows_per_s": rows / elapsed, "calls": calls, "elapsed_s": elapsed}


def train_throughput(which: str, samples: int, epochs: int) -> dict[str, Any]:
    """Samples/s of fitting ``samples`` rows for ``epochs`` epochs, via ``train()`` or a bare fit."""
    from pipeline.training.fit import TrainConfig, build_model, train

    cfg = TrainConfig(samples=samples, epochs=epochs)
    if which == "pipeline":
        result = train(cfg)
        return {"samples_per_s": result.timings["samples_per_s"], "fit_s": result.timings["fit_s"],
                "batch_size": cfg.effective_batch_size}
    import math

    from pipeline.tf_env import keras
    from pipeline.training.data import make_data

    x, y = make_data(cfg.data_spec())
    keras().utils.set_random_seed(cfg.seed)
    batch_size = cfg.effective_batch_size
    steps = epochs * math.ceil(len(x) / batch_size)
    model = build_model(x.shape[1], cfg.optimizer, cfg.learning_rate, cfg.lr_schedule, steps)
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0)
    fit_s = time.perf_counter() - started
    return {"samples_per_s": epochs * len(x) / fit_s, "fit_s": fit_s, "batch_size": batch_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("prepare")
    p.add_argument("--base_path", type=Path, required=True)
    f = commands.add_parser("floor")
    f.add_argument("--model_dir", type=Path, required=True)
    f.add_argument("--body", type=Path, required=True)
    f.add_argument("--duration", type=float, default=3.0)
    t = commands.add_parser("train")
    t.add_argument("--which", choices=("pipeline", "bare"), required=True)
    t.add_argument("--samples", type=int, default=1_000_000)
    t.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args(argv)
    if args.command == "prepare":
        result = prepare(args.base_path)
    elif args.command == "floor":
        result = floor(args.model_dir, args.body, args.duration)
    else:
        result = train_throughput(args.which, args.samples, args.epochs)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
