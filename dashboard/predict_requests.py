"""The Predict page's requests, apart from its widgets: one request for any signature over REST
(``:predict`` in row or columnar format, ``:classify``, ``:regress``) or gRPC (Predict with typed
tensors), kept in the request history, errors included; the answer read back as one value list per
output name; the version a request reaches; and the fingerprint that tells a stale answer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dashboard import clients, input_table, predict_history, session
from pipeline.client.errors import ClientError
from pipeline.client.grpc import as_exchange
from pipeline.client.rest import PredictResult, served_version
from pipeline.client.signatures import Signature, read_outputs, rest_body, typed_array
from pipeline.client.urls import model_url

TRANSPORTS = ("REST", "gRPC")
FORMATS = {"row": "row (instances)", "columnar": "columnar (inputs)"}


@dataclass
class Request:
    """Everything one request depends on: model, target (``{}`` latest, ``{"version": 3}`` or
    ``{"label": "stable"}``), signature, transport and format, and the inputs (predict) or
    examples (classify/regress)."""

    model: str
    target: dict[str, Any]
    signature: Signature
    transport: str = "REST"
    fmt: str = "row"
    inputs: dict[str, Any] | None = None
    examples: list[dict[str, Any]] | None = None
    context: dict[str, Any] | None = None
    rows: int = 0

    @property
    def verb(self) -> str:
        return self.signature.method

    def rest_body(self) -> dict[str, Any]:
        """The REST body of this request (what curl and Python snippets send)."""
        if self.signature.takes_examples:
            body: dict[str, Any] = {}
            if self.signature.name != "serving_default":
                body["signature_name"] = self.signature.name
            if self.context:
                body["context"] = self.context
            body["examples"] = self.examples or []
            return body
        return rest_body(input_table.as_lists(self.inputs or {}), self.fmt, self.signature.name)

    def rest_url(self) -> str:
        return model_url(session.serving_url(), self.model, verb=self.verb, **self.target)

    def key(self) -> str:
        """A fingerprint of everything an answer depends on; an answer whose key differs from
        the page's is stale."""
        fmt = self.fmt if self.transport == "REST" else ""
        digest = hashlib.sha1(json.dumps([self.model, self.target, self.signature.name, fmt, self.transport,
                                          self.examples, self.context], sort_keys=True, default=str).encode())
        for name in sorted(self.inputs or {}):
            value = (self.inputs or {})[name]
            digest.update(name.encode())
            if isinstance(value, np.ndarray):
                digest.update(str(value.dtype).encode() + np.ascontiguousarray(value).tobytes())
            else:
                digest.update(json.dumps(value, default=str).encode())
        return digest.hexdigest()


@dataclass
class Answer:
    """An answered request: the exchange as shown, every output by name, the version that answered."""

    request: Request
    result: PredictResult
    outputs: dict[str, Any]
    version: int | None
    key: str
    answered_by: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def served(model: str, target: dict[str, Any]) -> int | None:
    """The version a request to ``target`` reaches (an explicit one, else from the metadata)."""
    if "version" in target:
        return int(target["version"])
    try:
        return served_version(clients.get_client().metadata(model, **target))
    except ClientError:
        return None


def _rest(request: Request) -> PredictResult:
    client, target = clients.get_client(), request.target
    if request.verb == "classify":
        return client.classify(request.model, request.examples or [], context=request.context,
                               signature_name=_named(request.signature), **target)
    if request.verb == "regress":
        return client.regress(request.model, request.examples or [], context=request.context,
                              signature_name=_named(request.signature), **target)
    return client.predict_body(request.model, request.rest_body(), **target)


def _named(signature: Signature) -> str | None:
    return None if signature.name == "serving_default" else signature.name


def _grpc(request: Request) -> tuple[PredictResult, int]:
    """Predict (one typed tensor per input), Classify or Regress (tf.Examples) over gRPC, shown like
    a REST exchange."""
    client = clients.get_grpc_client()
    target = {"version": request.target.get("version"), "label": request.target.get("label")}
    spec = {"name": request.model, "signature_name": request.signature.name, **request.target}
    if request.signature.takes_examples:
        call = client.classify if request.verb == "classify" else client.regress
        done = call(request.model, request.examples or [], context=request.context,
                    signature=request.signature.name, **target)
        method = "Classify" if request.verb == "classify" else "Regress"
        body = {"model_spec": spec, **({"context": request.context} if request.context else {}),
                "examples": request.examples or []}
        result = as_exchange(f"{client.url}/tensorflow.serving.PredictionService/{method}", body, done)
        return result, done.version
    inputs = input_table.as_lists(request.inputs or {})
    try:
        arrays = {k: typed_array(request.signature.inputs[k], v) for k, v in inputs.items()}
    except ValueError as exc:
        raise ClientError(str(exc), url=client.url) from None
    answer = client.predict_arrays(request.model, arrays, signature=request.signature.name, **target)
    result = as_exchange(f"{client.url}/tensorflow.serving.PredictionService/Predict",
                         {"model_spec": spec, "inputs": inputs}, answer)
    return result, answer.version


def send(request: Request) -> Answer:
    """Send ``request`` and keep it in the request history (answered or failed). Raises
    ClientError (after recording it); ValueError when the answer cannot be read by output."""
    grpc = request.transport == "gRPC"
    version = None if grpc else served(request.model, request.target)
    try:
        if grpc:
            result, version = _grpc(request)
        else:
            result = _rest(request)
    except ClientError as exc:
        body = request.rest_body() if not grpc or request.signature.takes_examples else \
            {"model_spec": {"name": request.model}, "inputs": input_table.as_lists(request.inputs or {})}
        predict_history.record(request.target, body, request.rows, error=exc, transport=request.transport,
                               url=exc.url or request.rest_url())
        raise
    predict_history.record(request.target, result.request, request.rows, result=result, version=version,
                           transport=request.transport)
    outputs = read_outputs(result.response, request.signature)
    return Answer(request, result, outputs, version, request.key(), answered_by(request.target, version))


def answered_by(target: dict[str, Any], version: int | None) -> str:
    """``version 3``, ``label stable (version 3)`` or ``the latest version (version 3)``."""
    if "version" in target:
        return f"version {version}"
    text = f"label {target['label']}" if "label" in target else "the latest version"
    return text + (f" (version {version})" if version is not None else "")
