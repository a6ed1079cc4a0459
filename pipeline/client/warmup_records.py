"""Read a version's warm-up requests (``assets.extra/tf_serving_warmup_requests``) without TensorFlow.

The file is a TFRecord file of ``PredictionLog`` protos, the requests TF Serving replays when it
loads the version. They are the best example a model ships with: the Predict page opens a model
with its first one. :func:`read_warmup_requests` gives each as plain Python values (predict inputs
as nested lists by input key, classify/regress examples as ``{feature: [values]}``); the messages
come from `pipeline.tf_protos` (no TensorFlow import). :func:`tfrecords` reads the records through
`pipeline.formats.tfrecord`, the project's one TFRecord reader: CRC-checked, a record whose data
fails its checksum is skipped, a damaged length or a record cut short ends the reading there.
"""
from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import tf_protos
from pipeline.formats import tfrecord

WARMUP_PATH = Path("assets.extra") / "tf_serving_warmup_requests"


@dataclass(frozen=True)
class WarmupRequest:
    """One request of a warm-up file: ``kind`` predict, classify or regress, the signature it
    names, and its inputs (predict) or examples (classify/regress)."""

    kind: str
    signature: str
    inputs: dict[str, Any] = field(default_factory=dict)
    examples: list[dict[str, list[Any]]] = field(default_factory=list)


def tfrecords(path: Path | str, report: tfrecord.ReadReport | None = None) -> Iterator[bytes]:
    """The good records of a TFRecord file, in order (`pipeline.formats.tfrecord.iter_records`:
    a record failing its data checksum is skipped, reading stops at a damaged length or a record
    cut short; ``report`` counts both). OSError if the file cannot be opened."""
    return tfrecord.iter_records(path, report)


def _text(item: bytes) -> Any:
    try:
        return item.decode("utf-8")
    except UnicodeDecodeError:
        return {"b64": base64.b64encode(item).decode("ascii")}


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return _text(value) if isinstance(value, bytes) else value


def _tensor(proto: Any, key: str) -> Any:
    from pipeline.serving.errors import ServingError
    from pipeline.serving.grpc.tensors import to_array

    try:
        return _plain(to_array(proto, key).tolist())
    except ServingError as error:
        raise ValueError(error.message) from None


def _features(example: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for name, feature in sorted(example.features.feature.items()):
        kind = feature.WhichOneof("kind")
        if kind == "float_list":
            found[name] = list(feature.float_list.value)
        elif kind == "int64_list":
            found[name] = list(feature.int64_list.value)
        elif kind == "bytes_list":
            found[name] = [_text(v) for v in feature.bytes_list.value]
    return found


def examples_of(model_input: Any) -> list[dict[str, list[Any]]]:
    """The tf.Examples of a classify/regress `Input` as `{feature: [values]}`, a context merged into each."""
    which = model_input.WhichOneof("kind")
    if which == "example_list":
        return [_features(e) for e in model_input.example_list.examples]
    if which == "example_list_with_context":
        context = _features(model_input.example_list_with_context.context)
        return [{**context, **_features(e)} for e in model_input.example_list_with_context.examples]
    return []


def parse_record(data: bytes) -> WarmupRequest | None:
    """One ``PredictionLog`` as a :class:`WarmupRequest` (``None`` for kinds the page cannot edit:
    multi-inference, session runs); ``ValueError`` when the bytes are not a PredictionLog."""
    from google.protobuf.message import DecodeError

    log = tf_protos.message_class("tensorflow.serving.PredictionLog")()
    try:
        log.ParseFromString(data)
    except DecodeError as error:
        raise ValueError(f"not a PredictionLog: {error}") from None
    kind = log.WhichOneof("log_type")
    if kind == "predict_log":
        request = log.predict_log.request
        return WarmupRequest("predict", request.model_spec.signature_name or "serving_default",
                             inputs={k: _tensor(v, k) for k, v in sorted(request.inputs.items())})
    if kind in ("classify_log", "regress_log"):
        request = getattr(log, kind).request
        return WarmupRequest(kind.split("_")[0], request.model_spec.signature_name or "serving_default",
                             examples=examples_of(request.input))
    return None


def read_warmup_requests(version_dir: Path | str, limit: int = 20) -> list[WarmupRequest]:
    """The first ``limit`` requests of a version's warm-up file that the page can edit; none when
    the version has no warm-up file (or it cannot be read). Records that do not parse are skipped."""
    path = Path(version_dir) / WARMUP_PATH
    found: list[WarmupRequest] = []
    try:
        for data in tfrecords(path):
            try:
                request = parse_record(data)
            except ValueError:
                continue
            if request is not None:
                found.append(request)
            if len(found) >= limit:
                break
    except OSError:
        return []
    return found
