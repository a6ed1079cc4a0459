"""Turn chosen requests into a version's TF Serving warm-up file.

TF Serving replays ``<version>/assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
``PredictionLog`` protos) when it loads the version, so the first real request does not pay for
graph initialisation. :func:`export_warmup` writes that file from predict bodies (as kept in the
request history), in the calling process and without TensorFlow: the SavedModel's signatures and
the ``PredictionLog`` messages come from `pipeline.tf_protos`, the file from
`pipeline.formats.tfrecord`. The file replaces any earlier one atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline import tf_protos
from pipeline.formats import tfrecord
from pipeline.model_dir import ModelDirError, read_signatures
from pipeline.serving.grpc.tensors import fill_proto

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000
"""TF Serving reads at most this many records from a warm-up file."""
CANNOT = "Could not write the warm-up file: "


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
    """Write the warm-up file of ``version_dir`` from predict ``bodies`` (one ``PredictionLog``
    each) and return its path. ``ValueError`` with a readable reason (a body without rows, a
    signature the version lacks or whose inputs rows cannot fill, an unreadable SavedModel); the
    previous file, if any, is left as it was."""
    requests = warmup_requests(bodies)
    version_dir = Path(version_dir)
    try:
        signatures = read_signatures(version_dir, tf_protos.message_class("tensorflow.SavedModel"))
    except ModelDirError as error:
        raise ValueError(f"{CANNOT}{error.message}") from None
    request_class = tf_protos.message_class("tensorflow.serving.PredictRequest")
    log_class = tf_protos.message_class("tensorflow.serving.PredictionLog")
    records = []
    for item in requests:
        name = item["signature_name"]
        if name not in signatures:
            raise ValueError(f"{CANNOT}the version has no signature {name!r}")
        keys = list(signatures[name].inputs)
        if len(keys) != 1:
            raise ValueError(f"{CANNOT}signature {name!r} has {len(keys)} inputs; "
                             "rows fill exactly one")
        try:
            rows = np.asarray(item["rows"], dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{CANNOT}rows that are not numbers ({error})") from None
        request = request_class()
        request.model_spec.name = model_name
        request.model_spec.signature_name = name
        fill_proto(request.inputs[keys[0]], rows, as_content=True)  # as tf.make_tensor_proto writes it
        log = log_class()
        log.predict_log.request.CopyFrom(request)
        records.append(log.SerializeToString())
    out = warmup_path(version_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tfrecord.write_records(out, records)
    return out
