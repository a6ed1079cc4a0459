"""Turn a spec into the exact bytes the workers send, and check them once before any load.

The model's metadata (REST ``/metadata``) gives the signature; without a body the request is one
example of every input built from it (`pipeline.client.signatures.example_inputs`, the builder the
Predict page starts from). REST requests are one prebuilt
HTTP/1.1 POST; gRPC requests one serialized ``PredictRequest`` built from the same JSON body with
TF Serving's messages from `pipeline.tf_protos` and the signature's dtypes, never with TensorFlow.
:func:`resolve` sends one request the workers' way before the sweep, so an unreachable server, an
unknown model or a request the model refuses is said at once, in the server's own words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.client import signatures
from pipeline.client.errors import ClientError
from pipeline.client.history import list_requests
from pipeline.client.rest import ServingClient, served_version
from pipeline.client.urls import model_url, normalize_url
from pipeline.loadtest import worker
from pipeline.loadtest.spec import LoadSpec, LoadTestError

PREDICT_METHOD = "/tensorflow.serving.PredictionService/Predict"
DEFAULT_SIGNATURE = "serving_default"
BUILT = "an example built from the signature"


@dataclass(frozen=True)
class Resolved:
    """A spec made concrete: what is sent, where, and how it was checked."""

    target: worker.Target
    body: dict[str, Any]
    body_source: str
    verb: str
    where: str
    """Human words for the endpoint: ``POST http://.../v1/models/m:predict`` or ``gRPC host:port Predict``."""
    version: int | None
    """The version that answered the metadata request (None when the server does not say)."""
    probe_ms: float


def read_body(path: Path | str) -> dict[str, Any]:
    """A request body from a JSON file; ``LoadTestError`` naming the problem."""
    try:
        body = json.loads(Path(path).read_text())
    except OSError as error:
        raise LoadTestError(f"cannot read the request body {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise LoadTestError(f"the request body {path} is not JSON: {error}") from None
    if not isinstance(body, dict):
        raise LoadTestError(f"the request body {path} is not a JSON object like {{\"instances\": [...]}}")
    return body


def replayable(entry: Mapping[str, Any]) -> bool:
    """Whether a request history entry can be replayed as load: answered, over REST, body kept."""
    return (isinstance(entry.get("request"), dict) and entry.get("transport", "REST") == "REST"
            and not entry.get("error"))


def body_from_history(base_path: Path | str, entry_id: str | None = None) -> tuple[dict[str, Any], str]:
    """The newest answered REST request kept in a model folder's request history (or the entry
    ``entry_id``), with a description; ``LoadTestError`` when there is none."""
    for entry in list_requests(base_path):
        if entry_id is not None and entry["id"] != entry_id:
            continue
        body = entry.get("request")
        if replayable(entry):
            when = entry.get("time", "")
            return body, f"request history entry {entry['id']} ({when}, {entry.get('rows')} rows)"
        if entry_id is not None:
            raise LoadTestError(f"history entry {entry_id} kept no REST request body (too large, or failed)")
    which = f"entry {entry_id}" if entry_id else "answered REST request"
    raise LoadTestError(f"no {which} in the request history of {base_path}: send one from the Predict page")


def http_request(url: str, body: dict[str, Any]) -> bytes:
    """The whole HTTP/1.1 POST of ``body`` to ``url`` (kept alive), as bytes."""
    parts = urlsplit(url)
    data = json.dumps(body, separators=(",", ":")).encode()
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
            f"User-Agent: pipeline.loadtest\r\nContent-Length: {len(data)}\r\n\r\n")
    return head.encode() + data


def signature_of(metadata: Mapping[str, Any], name: str) -> signatures.Signature:
    """The signature ``name`` of a metadata answer; ``ValueError`` naming the signatures there are."""
    found = signatures.read_signatures(metadata)
    if name not in found:
        known = ", ".join(found) or "none"
        raise ValueError(f"the model has no signature {name!r} (its signatures: {known})")
    return found[name]


def example_body(metadata: Mapping[str, Any], signature: str = DEFAULT_SIGNATURE) -> dict[str, Any]:
    """A valid ``:predict`` body for ``signature``: one example of every input
    (:func:`signatures.example_inputs`), in the row format when every input is batched, else
    columnar. ``ValueError`` when the model has no such signature, it has no inputs, or it takes
    tf.Examples (classify/regress: give the body)."""
    sig = signature_of(metadata, signature)
    if sig.takes_examples:
        raise ValueError(f"signature {signature!r} takes tf.Examples ({sig.method}): give the request body")
    if not sig.inputs:
        raise ValueError(f"signature {signature!r} has no inputs")
    fmt = "row" if all(spec.batched for spec in sig.inputs.values()) else "columnar"
    return signatures.rest_body(signatures.example_inputs(sig), fmt, sig.name)


def grpc_request(spec: LoadSpec, body: Mapping[str, Any], metadata: Mapping[str, Any]) -> bytes:
    """The serialized ``PredictRequest`` for ``body`` (TF Serving's REST JSON), typed by the
    signature; ``ValueError`` naming what does not fit."""
    from pipeline import tf_protos
    from pipeline.serving.grpc.tensors import fill_proto

    signature = body.get("signature_name") or spec.signature
    sig = signature_of(metadata, signature)
    columns, fmt = signatures.inputs_of_body(body, sig)
    signatures.check_inputs(sig, columns, rows=fmt == "row")
    request = tf_protos.message_class("tensorflow.serving.PredictRequest")()
    request.model_spec.name = spec.model
    if spec.label:
        request.model_spec.version_label = spec.label
    elif spec.version is not None:
        request.model_spec.version.value = int(spec.version)
    request.model_spec.signature_name = signature
    for key, value in columns.items():
        array = signatures.typed_array(sig.inputs[key], value)
        fill_proto(request.inputs[key], array, as_content=array.dtype != object)
    return request.SerializeToString()


def _method(metadata: Mapping[str, Any], signature: str) -> str:
    """``predict``, ``classify`` or ``regress``: the REST verb the signature answers."""
    found = signatures.read_signatures(metadata).get(signature)
    return found.method if found is not None else signatures.PREDICT


def _grpc_address(target: str) -> tuple[str, int]:
    parts = urlsplit(f"//{target.removeprefix('grpc://')}")
    if not parts.hostname or not parts.port:
        raise LoadTestError(f"gRPC target {target!r} is not host:port, e.g. 127.0.0.1:8500")
    return parts.hostname, parts.port


def _metadata(spec: LoadSpec) -> dict[str, Any]:
    try:
        return ServingClient(spec.url, timeout=min(spec.timeout_s, 30.0)).metadata(
            spec.model, version=spec.version, label=spec.label)
    except ClientError as error:
        raise LoadTestError(f"cannot load-test {spec.model}: {error}") from None


def resolve(spec: LoadSpec) -> Resolved:
    """The spec made concrete and checked with one request; ``LoadTestError`` with a readable
    reason when the server cannot be reached, the model or signature is unknown, the body does
    not fit, or (unless ``spec.expect_errors``) the model refuses the request."""
    try:
        base = normalize_url(spec.url)
    except ValueError as error:
        raise LoadTestError(str(error)) from None
    metadata = _metadata(spec.with_(url=base))
    try:
        body = spec.body if spec.body is not None else example_body(metadata, spec.signature)
    except ValueError as error:
        raise LoadTestError(f"cannot build a request: {error}") from None
    source = spec.body_source or ("given" if spec.body is not None else BUILT)
    if spec.signature != DEFAULT_SIGNATURE and spec.body is not None:
        body = {"signature_name": spec.signature, **body}
    signature = body.get("signature_name", spec.signature)
    verb = spec.verb or ("predict" if {"instances", "inputs"} & set(body)
                         else _method(metadata, signature))
    if spec.grpc:
        if verb != "predict":
            raise LoadTestError(f"the gRPC load sends Predict requests; this is a {verb} request: use REST")
        host, port = _grpc_address(spec.grpc)
        try:
            payload = grpc_request(spec, body, metadata)
        except ValueError as error:
            raise LoadTestError(f"cannot turn the request into a gRPC PredictRequest: {error}") from None
        target = worker.Target(worker.GRPC, host, port, payload, method=PREDICT_METHOD)
        where = f"gRPC {spec.grpc} Predict"
    else:
        url = model_url(base, spec.model, spec.version, spec.label, verb=verb)
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = worker.Target(worker.REST, parts.hostname or "127.0.0.1", port, http_request(url, body),
                               tls=parts.scheme == "https")
        where = f"POST {url}"
    kind, message, seconds = worker.probe(target, spec.timeout_s)
    if kind != "OK" and not (spec.expect_errors and kind.startswith(("HTTP", "gRPC"))):
        raise LoadTestError(_refusal(kind, message, where, spec))
    return Resolved(target, body, source, verb, where, served_version(metadata), seconds * 1000.0)


def _refusal(kind: str, message: str, where: str, spec: LoadSpec) -> str:
    if kind.startswith(("HTTP", "gRPC")):
        return (f"the model refuses this request ({where}): {kind}: {message}. Fix the request, version or "
                "signature (or pass --expect-errors to measure how fast it refuses).")
    endpoint = spec.grpc or spec.url
    detail = f"{kind}: {message}" if message else kind
    return f"no answer from {endpoint} ({detail}): is the server running there?"
