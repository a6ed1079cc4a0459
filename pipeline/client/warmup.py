"""Turn chosen requests into a version's TF Serving warm-up file.

TF Serving replays ``<version>/assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
``PredictionLog`` protos) when it loads the version, so the first real request does not pay for
graph initialisation. :func:`export_warmup` writes that file from requests kept in the request
history (predict bodies of any signature, typed by the version's signature; classify and regress
examples) in a child process (``python -m pipeline.client.warmup``), because building the
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

from pipeline.model_dir import ModelDirError
from pipeline.settings import PROJECT_ROOT

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000
"""TF Serving reads at most this many records from a warm-up file."""
CHILD_TIMEOUT_S = 180.0


def warmup_path(version_dir: Path | str) -> Path:
    """Where TF Serving looks for the warm-up file of the version in ``version_dir``."""
    return Path(version_dir) / "assets.extra" / WARMUP_FILE


def request_of_entry(body: dict[str, Any], verb: str = "predict", transport: str = "REST") -> dict[str, Any]:
    """A kept request (a REST body, or the gRPC request as the history keeps it) as one warm-up
    request: ``{"verb", "signature_name", "body"}`` with a REST-style body."""
    if transport == "gRPC":
        spec = body.get("model_spec") or {}
        inputs = body.get("inputs")
        return {"verb": "predict", "signature_name": spec.get("signature_name") or "serving_default",
                "body": {"inputs": inputs}}
    return {"verb": verb, "signature_name": body.get("signature_name") or "serving_default", "body": body}


def warmup_requests(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One ``{"verb", "signature_name", "body"}`` per item: a request from :func:`request_of_entry`,
    or a plain ``:predict`` body (row ``instances`` or columnar ``inputs``). ``ValueError`` naming
    the first one that holds nothing to send (its body was too large to keep)."""
    found = []
    for index, item in enumerate(items, start=1):
        request = item if isinstance(item, dict) and "verb" in item else request_of_entry(item or {})
        body = request.get("body") or {}
        key = "examples" if request["verb"] in ("classify", "regress") else None
        values = body.get(key) if key else body.get("instances", body.get("inputs"))
        if values is None or values == [] or values == {}:
            raise ValueError(f"request {index} has no input rows kept (its body was too large to keep)")
        found.append(request)
    if len(found) > MAX_WARMUP_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_WARMUP_RECORDS} warm-up records, not {len(found)}")
    return found


def export_warmup(items: list[dict[str, Any]], version_dir: Path | str, model_name: str) -> Path:
    """Write the warm-up file of ``version_dir`` from ``items`` (see :func:`warmup_requests`) in a
    child process and return its path. ``ValueError`` with a readable reason if an item holds nothing
    or the child fails (an unknown signature, inputs that do not fit it)."""
    requests = warmup_requests(items)
    job = {"version_dir": str(version_dir), "model_name": model_name, "requests": requests}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
    done = subprocess.run([sys.executable, "-m", "pipeline.client.warmup"], input=json.dumps(job), text=True,
                          capture_output=True, cwd=PROJECT_ROOT, env=env, timeout=CHILD_TIMEOUT_S)
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise ValueError(f"Could not write the warm-up file: {reason}")
    return warmup_path(version_dir)


def _feature(example: Any, name: str, value: Any) -> None:
    values = value if isinstance(value, list) else [value]
    feature = example.features.feature[name]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        feature.int64_list.value.extend(values)
    elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        feature.float_list.value.extend(float(v) for v in values)
    else:
        feature.bytes_list.value.extend(v.encode() if isinstance(v, str) else bytes(v) for v in values)


def _log(item: dict[str, Any], signatures: dict[str, Any], model_name: str, tf: Any) -> Any:
    """One PredictionLog for a warm-up request, its inputs typed by the version's signature."""
    import numpy as np
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import (
        classification_pb2,
        model_pb2,
        predict_pb2,
        prediction_log_pb2,
        regression_pb2,
    )

    from pipeline.client.signatures import Signature, TensorSpec, inputs_of_body

    name, body = item["signature_name"], item["body"]
    if name not in signatures:
        raise ValueError(f"the version has no signature {name!r}")
    spec = model_pb2.ModelSpec(name=model_name, signature_name=name)
    if item["verb"] in ("classify", "regress"):
        request = (classification_pb2.ClassificationRequest() if item["verb"] == "classify"
                   else regression_pb2.RegressionRequest())
        request.model_spec.CopyFrom(spec)
        for values in body["examples"]:
            example = request.input.example_list.examples.add()
            for feature, value in values.items():
                _feature(example, feature, value)
        if item["verb"] == "classify":
            logged = prediction_log_pb2.ClassifyLog(request=request)
            return prediction_log_pb2.PredictionLog(classify_log=logged)
        return prediction_log_pb2.PredictionLog(regress_log=prediction_log_pb2.RegressLog(request=request))
    info = signatures[name]
    specs = {k: TensorSpec(k, t.dtype, t.shape) for k, t in info.inputs.items()}
    signature = Signature(name, "predict", specs)
    inputs, _ = inputs_of_body(body, signature)
    request = predict_pb2.PredictRequest(model_spec=spec)
    for key, value in inputs.items():
        if key not in info.inputs:
            raise ValueError(f"signature {name!r} has no input {key!r} (it takes {', '.join(info.inputs)})")
        dtype = tf.dtypes.as_dtype(types_pb2.DataType.Value(info.inputs[key].dtype))
        array = np.asarray(value, dtype=object if dtype == tf.string else None)
        request.inputs[key].CopyFrom(tf.make_tensor_proto(array, dtype=dtype))
    return prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))


def _write(job: dict[str, Any]) -> Path:
    """In the child: build one ``PredictionLog`` per request and write them as TFRecords."""
    from pipeline.model_dir import read_signatures
    from pipeline.tf_env import tensorflow

    tf = tensorflow()
    version_dir = Path(job["version_dir"])
    signatures = read_signatures(version_dir)
    logs = [_log(item, signatures, job["model_name"], tf) for item in job["requests"]]
    out = warmup_path(version_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{WARMUP_FILE}.tmp")
    with tf.io.TFRecordWriter(str(tmp)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    os.replace(tmp, out)
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
