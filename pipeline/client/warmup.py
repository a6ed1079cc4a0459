"""Turn chosen requests into a version's TF Serving warm-up file.

TF Serving replays ``<version>/assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
``PredictionLog`` protos) when it loads the version, so the first real request does not pay for
graph initialisation. :func:`export_warmup` writes that file from predict bodies (as kept in the
request history) in a child process (``python -m pipeline.client.warmup``), because building the
protos imports TensorFlow, which must stay out of the dashboard's process. The file replaces any
earlier one atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipeline import state
from pipeline.model_dir import ModelDirError
from pipeline.settings import PROJECT_ROOT

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000
"""TF Serving reads at most this many records from a warm-up file."""
CHILD_TIMEOUT_S = 180.0


def warmup_path(version_dir: Path | str) -> Path:
    """Where TF Serving looks for the warm-up file of the version in ``version_dir``."""
    return Path(version_dir) / "assets.extra" / WARMUP_FILE


def warmup_requests(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{"signature_name", "rows"}`` per predict body (row ``instances`` or columnar ``inputs``
    holding a list of rows); ``ValueError`` naming the first body that is not one."""
    found = []
    for index, body in enumerate(bodies, start=1):
        rows = body.get("instances", body.get("inputs")) if isinstance(body, dict) else None
        if not isinstance(rows, list) or not rows:
            raise ValueError(f"request {index} has no input rows kept (its body was too large to keep)")
        found.append({"signature_name": body.get("signature_name") or "serving_default", "rows": rows})
    if len(found) > MAX_WARMUP_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_WARMUP_RECORDS} warm-up records, not {len(found)}")
    return found


def export_warmup(bodies: list[dict[str, Any]], version_dir: Path | str, model_name: str) -> Path:
    """Write the warm-up file of ``version_dir`` from predict ``bodies`` in a child process and
    return its path. ``ValueError`` with a readable reason if a body has no rows or the child fails."""
    requests = warmup_requests(bodies)
    job = {"version_dir": str(version_dir), "model_name": model_name, "requests": requests}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    done = subprocess.run([sys.executable, "-m", "pipeline.client.warmup"], input=json.dumps(job), text=True,
                          capture_output=True, cwd=PROJECT_ROOT, env=env, timeout=CHILD_TIMEOUT_S)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise ValueError(f"Could not write the warm-up file: {reason}")
    return warmup_path(version_dir)


def _write(job: dict[str, Any]) -> Path:
    """In the child: build one ``PredictionLog`` per request and write them as TFRecords."""
    import numpy as np

    from pipeline.model_dir import read_signatures
    from pipeline.tf_env import tensorflow

    tf = tensorflow()
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    version_dir = Path(job["version_dir"])
    signatures = read_signatures(version_dir)
    out = warmup_path(version_dir)
    with state.atomic_path(out) as tmp, tf.io.TFRecordWriter(str(tmp)) as writer:
        for item in job["requests"]:
            name = item["signature_name"]
            if name not in signatures:
                raise ValueError(f"the version has no signature {name!r}")
            keys = list(signatures[name].inputs)
            if len(keys) != 1:
                raise ValueError(f"signature {name!r} has {len(keys)} inputs; rows fill exactly one")
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=job["model_name"], signature_name=name))
            request.inputs[keys[0]].CopyFrom(tf.make_tensor_proto(np.asarray(item["rows"], dtype=np.float32)))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m pipeline.client.warmup``: the job as JSON on stdin; prints the file written."""
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    try:
        print(_write(json.loads(sys.stdin.read())))
    except (ValueError, OSError, KeyError, ModelDirError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
