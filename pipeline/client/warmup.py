"""Turn chosen requests into a version's TF Serving warm-up file.

TF Serving replays ``<version>/assets.extra/tf_serving_warmup_requests`` (a TFRecord file of
``PredictionLog`` protos) when it loads the version, so the first real request does not pay for
graph initialisation. :func:`export_warmup` writes that file from requests kept in the request
history: predict bodies of any signature (each input typed by the version's signature) and
classify / regress examples. It runs in the calling process and without TensorFlow: the
SavedModel's signatures and the ``PredictionLog`` messages come from `pipeline.tf_protos`, the
tensors are filled by `pipeline.serving.grpc.tensors.fill_proto`, the file is written by
`pipeline.formats.tfrecord`. The file replaces any earlier one atomically; a request that does not
fit the version is refused with a readable reason and the earlier file is left as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline import tf_protos
from pipeline.client import tf_examples
from pipeline.client.signatures import (
    NUMPY_DTYPES,
    Signature,
    TensorSpec,
    check_inputs,
    dtype_text,
    inputs_of_body,
    typed_array,
)
from pipeline.formats import tfrecord
from pipeline.model_dir import ModelDirError, SignatureInfo, read_signatures
from pipeline.serving.grpc.tensors import fill_proto

WARMUP_FILE = "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000
"""TF Serving reads at most this many records from a warm-up file."""
CANNOT = "Could not write the warm-up file: "
EXAMPLE_VERBS = ("classify", "regress")


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
        key = "examples" if request["verb"] in EXAMPLE_VERBS else None
        values = body.get(key) if key else body.get("instances", body.get("inputs"))
        if values is None or values == [] or values == {}:
            raise ValueError(f"request {index} has no input rows kept (its body was too large to keep)")
        found.append(request)
    if len(found) > MAX_WARMUP_RECORDS:
        raise ValueError(f"TF Serving reads at most {MAX_WARMUP_RECORDS} warm-up records, not {len(found)}")
    return found


def export_warmup(items: list[dict[str, Any]], version_dir: Path | str, model_name: str) -> Path:
    """Write the warm-up file of ``version_dir`` from ``items`` (see :func:`warmup_requests`; one
    ``PredictionLog`` each) and return its path. ``ValueError`` with a readable reason (an item
    holding nothing, a signature the version lacks, inputs that do not fit the signature, examples
    sent to a signature of another method, an unreadable SavedModel); the previous file, if any, is
    left as it was."""
    requests = warmup_requests(items)
    version_dir = Path(version_dir)
    try:
        signatures = read_signatures(version_dir, tf_protos.message_class("tensorflow.SavedModel"))
    except ModelDirError as error:
        raise ValueError(f"{CANNOT}{error.message}") from None
    records = [_log(item, index, signatures, model_name).SerializeToString()
               for index, item in enumerate(requests, start=1)]
    out = warmup_path(version_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tfrecord.write_records(out, records)
    return out


def _log(item: dict[str, Any], index: int, signatures: dict[str, SignatureInfo], model_name: str) -> Any:
    """One ``PredictionLog`` (a ``tf_protos`` message) for warm-up request number ``index``."""
    name, verb, body = item["signature_name"], item["verb"], item["body"]
    if name not in signatures:
        raise ValueError(f"{CANNOT}the version has no signature {name!r}")
    info = signatures[name]
    log = tf_protos.message_class("tensorflow.serving.PredictionLog")()
    if verb in EXAMPLE_VERBS:
        method = info.method_name.rsplit("/", 1)[-1]
        if method != verb:
            raise ValueError(f"{CANNOT}request {index} sends {verb} examples to signature {name!r}, "
                             f"whose method is {info.method_name or 'not set'}")
        request = getattr(log, f"{verb}_log").request
        _fill_examples(request.input, body, index)
    else:
        request = log.predict_log.request
        for key, array in _typed_inputs(body, name, info, index).items():
            fill_proto(request.inputs[key], array, as_content=True)  # as tf.make_tensor_proto writes it
    request.model_spec.name = model_name
    request.model_spec.signature_name = name
    return log


def _typed_inputs(body: Mapping[str, Any], name: str, info: SignatureInfo, index: int) -> dict[str, Any]:
    """A ``:predict`` body's inputs as numpy arrays of the signature's dtypes, checked against its
    keys, dtypes and shapes (TF Serving fails to load a version whose warm-up request fails)."""
    specs = {k: TensorSpec(k, t.dtype, t.shape) for k, t in info.inputs.items()}
    signature = Signature(name, "predict", specs)
    try:
        inputs, _ = inputs_of_body(body, signature)
        check_inputs(signature, inputs, rows=False)
    except ValueError as error:
        raise ValueError(f"{CANNOT}request {index}: {error}") from None
    for key, spec in specs.items():
        if spec.dtype not in NUMPY_DTYPES:
            raise ValueError(f"{CANNOT}input {key!r} of signature {name!r} is {dtype_text(spec.dtype)}, "
                             "which warm-up files are not written with here")
    try:
        return {key: typed_array(specs[key], value) for key, value in inputs.items()}
    except (TypeError, ValueError, OverflowError) as error:
        raise ValueError(f"{CANNOT}request {index}: values that do not fit the signature ({error})") from None


def _fill_examples(model_input: Any, body: Mapping[str, Any], index: int) -> None:
    """``examples`` of a REST classify/regress body as an ``example_list`` of tf.Examples. A
    ``context`` is merged into every example (what TF Serving does with ``example_list_with_context``
    before parsing), so the file loads in this project's server too, which replays example lists only."""
    try:
        tf_examples.fill_example_list(model_input, body.get("examples"), body.get("context"))
    except ValueError as error:
        raise ValueError(f"{CANNOT}request {index}: {error}") from None
