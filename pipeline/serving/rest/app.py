"""The TensorFlow Serving REST API as a raw ASGI app (run by uvicorn with httptools + uvloop).

Routes (spec §1.1): `/v1/...` paths follow TF Serving's URL grammar, matched case-insensitively on
the raw percent-encoded path, names and labels percent-decoded afterwards:

    POST /v1/models/{NAME}[/versions/{V}|/labels/{L}]:{predict|classify|regress}
    GET  /v1/models/{NAME}[/versions/{V}|/labels/{L}][/metadata]
    GET  /v1/models:list            (an extension: the models served; TF Serving has no listing)

Every other /v1 request is `400 Malformed request: {METHOD} {PATH}`; OPTIONS is a CORS preflight;
the Prometheus path (when enabled) serves metrics; any other path is libevent's HTML 404. Every /v1
answer is JSON (`Content-Type: application/json`), errors are `{"error": "..."}` with TF Serving's
status code for the canonical code (`http_status.py`, the one place a code becomes an HTTP status).

Why raw ASGI rather than Starlette routing: on this machine a hello-world under the same uvicorn
answered ~54k requests/s raw versus ~23k through a Starlette catch-all route; the grammar is one
precompiled regex per method either way.

The request path is the data plane's (`dataplane.py`), shared with gRPC: this module is a codec
(parse the URL and JSON, format the answer). The event loop only reads bodies and writes answers;
each predict/classify/regress is admitted by the core (past `--max_pending_requests` it is answered
503 at once, after its body arrived: a slow upload holds no slot), then runs whole (JSON parse,
conversion, model run, serialization) in a worker of the REST lane, bounded by
`--rest_api_timeout_in_ms` (504 DEADLINE_EXCEEDED; the model call gets the time left as
`RunOptions.timeout_in_ms`, and the loop answers itself `BACKSTOP_SECONDS` later). A client whose
connection is lost while its request waits or runs frees its admission slot at once and its work
is abandoned. Status and metadata are cheap and answered on the loop. Responses leave in one write
(`uvicorn_protocol.py`).
"""

from __future__ import annotations

import functools
import logging
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from google.protobuf import json_format, wrappers_pb2
from tensorflow_serving.apis import model_pb2

from pipeline.serving.dataplane import DataPlane, Deadline, Servable, Signature, Target, Ticket
from pipeline.serving.errors import Code, InvalidArgument, ServingError
from pipeline.serving.rest import examples, json_tensor
from pipeline.serving.rest.http_status import http_status
from pipeline.serving.rest.json_body import parse_json_body, signature_name_of
from pipeline.serving.rest.request_log_hook import RestRequestTrace
from pipeline.serving.rest.uvicorn_protocol import ON_DISCONNECT

log = logging.getLogger(__name__)

_NAME = r"([^/:]+)"
_VERSION_OR_LABEL = rf"(?:/versions/(\d+)|/labels/{_NAME})?"
POST_PATH = re.compile(rf"/v1/models/{_NAME}{_VERSION_OR_LABEL}:([^/:]+)", re.IGNORECASE)
GET_PATH = re.compile(rf"/v1/models(?:/{_NAME})?{_VERSION_OR_LABEL}(?:/(metadata))?", re.IGNORECASE)
LIST_PATH = "/v1/models:list"
_ORIGIN = re.compile(r"https?://")
_INT64_MAX = 2**63 - 1
BACKSTOP_SECONDS = 1.0
"""How long after `--rest_api_timeout_in_ms` the loop answers 504 itself. A model call gets the
timeout as `RunOptions.timeout_in_ms` and answers TensorFlow's `Timed out waiting for notification`
first, as TF Serving does; the backstop covers work TensorFlow cannot interrupt (LiteRT, JSON)."""

NOT_FOUND_HTML = (b"<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n"
                  b"</BODY></HTML>\n")
_JSON = [(b"content-type", b"application/json")]
_CORS = [(b"access-control-allow-origin", b"*"), (b"access-control-allow-methods", b"POST, GET"),
         (b"access-control-allow-headers", b"Content-Type")]


@dataclass(frozen=True)
class HttpOptions:
    """REST behaviour chosen by flags."""

    enable_cors: bool = False
    max_body_bytes: int = 32 * 1024 * 1024
    timeout_seconds: float | None = 30.0
    num_threads: int = 8
    metrics_path: str | None = None


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class RestApi:
    """ASGI callable: the REST codec on a `DataPlane`. Create once per server; thread-safe by design
    (all mutable state lives in the data plane: manager, metrics, admission)."""

    def __init__(self, plane: DataPlane, options: HttpOptions):
        self.plane = plane
        self.options = options
        self.metrics = plane.metrics
        self.lane = plane.lane("REST", options.num_threads, BACKSTOP_SECONDS)
        self._extra_headers = _JSON + (_CORS if options.enable_cors else [])
        timeout = options.timeout_seconds
        limit_ms = round(timeout * 1000) if timeout is not None else 0
        self._timeout_message = f"Request timed out after {limit_ms} ms (--rest_api_timeout_in_ms)"

    def close(self) -> None:
        """Stop the worker threads once running requests end."""
        self.lane.close()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1")
        method = scope["method"]
        if self.options.metrics_path is not None and path == self.options.metrics_path and self.metrics:
            content_type = [(b"content-type", self.metrics.content_type.encode())]
            await _send(send, 200, self.metrics.exposition(), content_type)
            return
        if path[:4].lower() != "/v1/":
            await _send(send, 404, NOT_FOUND_HTML, [(b"content-type", b"text/html")])
            return
        if method == "OPTIONS":
            origin = _header(scope, b"origin")
            await _send(send, 200 if _ORIGIN.search(origin) else 400, b"", self._extra_headers)
            return
        try:
            status, body = await self._dispatch(method, path, scope, receive)
        except _ClientGone:
            return
        except _BodyTooLarge:
            status, body = 413, json_tensor.error_body(
                f"Request body is larger than the limit of {self.options.max_body_bytes} bytes "
                "(--rest_api_max_body_bytes)")
        await _send(send, status, body, self._extra_headers)

    async def _dispatch(self, method: str, path: str, scope: dict, receive: Callable) -> tuple[int, bytes]:
        """Route one /v1 request; every failure becomes (status, {"error": ...})."""
        started = time.perf_counter()
        model_name, code = None, Code.OK
        verb = ""  # the `API` label: the URL's verb, "" for status and metadata (as TF Serving)
        try:
            if method == "POST" and (match := POST_PATH.fullmatch(path)):
                model_name, version, label, verb = _target(match)
                if verb not in ("predict", "classify", "regress"):  # `:Predict` too
                    raise _malformed(method, path)
                body = await self._read_body(scope, receive)  # before admission: a slow upload holds no slot
                target = Target(model_name, version, label)
                watch = _watcher(scope)
                timeout, message = self.options.timeout_seconds, self._timeout_message
                trace_for = functools.partial(RestRequestTrace, verb, model_name, label)  # if sampled
                if verb == "predict":
                    result = await self.lane.predict(model_name, lambda trace: _Predict(target, body, trace),
                                                     timeout, message, watch, trace_for, verb)
                else:
                    result = await self.lane.examples(
                        model_name, lambda trace: _Examples(verb, target, body, trace), timeout, message,
                        watch, trace_for, verb)
            elif method == "GET" and path.lower() == LIST_PATH:
                names = self.plane.model_names()  # not one model's request: no metrics
                result = json_tensor.dumps({"models": [{"name": name} for name in names]})
            elif method == "GET" and (match := GET_PATH.fullmatch(path)):
                if match.group(1) is None:
                    raise InvalidArgument("Missing model name in request.")
                model_name, version, label, _ = _target(match)
                if match.group(4) == "metadata":
                    result = self._metadata(Target(model_name, version, label))
                else:
                    result = self._status(model_name, version)
            else:
                raise _malformed(method, path)
            return 200, result
        except ServingError as error:
            code, message = error.code, error.message
            return http_status(code), json_tensor.error_body(error.message)
        except _BodyTooLarge:
            code = Code.RESOURCE_EXHAUSTED
            raise
        except _ClientGone:
            code = Code.CANCELLED
            raise
        except Exception as error:  # a bug must cost one request, never the server
            code = Code.INTERNAL
            log.exception("Internal error serving %s %s", method, path)
            return 500, json_tensor.error_body(f"Internal error: {type(error).__name__}: {error}")
        finally:
            self.lane.record(model_name, verb, code, started)  # every /v1 request, as TF Serving counts them

    def _status(self, model_name: str, version: int | None) -> bytes:
        response = self.plane.model_status(model_name, version)  # labels are ignored, as in TF Serving
        return json_tensor.pretty_proto_json(_to_dict(response))

    def _metadata(self, target: Target) -> bytes:
        """The metadata answer laid out as TF Serving's handler concatenates it: the ModelSpec and the
        SignatureDefMap each printed by protobuf with whitespace, inside a hand-written object."""
        servable = self.plane.servable(target)
        spec = model_pb2.ModelSpec(name=target.model_name,
                                   version=wrappers_pb2.Int64Value(value=servable.version))
        return (b'{\n"model_spec":' + json_tensor.pretty_proto_json(_to_dict(spec)) + b',\n"metadata": '
                b'{"signature_def": ' + json_tensor.pretty_proto_json(servable.metadata_dict["signature_def"])
                + b"}\n}\n")

    async def _read_body(self, scope: dict, receive: Callable) -> bytes:
        """The request body, gunzipped if `Content-Encoding` names gzip (`gzip`, `x-gzip`), or
        _BodyTooLarge past the limit."""
        limit = self.options.max_body_bytes
        declared = _header(scope, b"content-length")
        if declared.isdigit() and int(declared) > limit:
            raise _BodyTooLarge
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if "gzip" in _header(scope, b"content-encoding").lower():  # gzip, x-gzip: as TF Serving
            body = _gunzip(body, limit)
        return body


class _Predict:
    """A REST predict, parsed in a worker: the JSON body, then its inputs for the signature."""

    __slots__ = ("target", "signature_name", "_request", "_form", "_trace")

    def __init__(self, target: Target, body: bytes, trace: RestRequestTrace | None) -> None:
        self._request = parse_json_body(body)
        self.signature_name = signature_name_of(self._request)
        self.target = target
        self._trace = trace
        if trace is not None:
            trace.signature = self.signature_name

    def inputs(self, signature: Signature) -> dict:
        self._form, inputs = json_tensor.parse_predict_inputs(self._request, signature.input_dtypes)
        if self._trace is not None:
            self._trace.inputs = inputs
        return inputs

    def response(self, version: int, outputs: dict) -> bytes:
        if self._trace is not None:
            self._trace.outputs = outputs
        return json_tensor.format_predict_response(self._form, outputs)


class _Examples:
    """A REST classify or regress, parsed in a worker (TF Serving's order of checks, spec §2.2)."""

    __slots__ = ("target", "signature_name", "runtime_api", "example_count", "_api", "_serialized", "_trace")

    def __init__(self, api: str, target: Target, body: bytes, trace: RestRequestTrace | None) -> None:
        request = parse_json_body(body)
        self.signature_name = signature_name_of(request)
        if trace is not None:
            trace.signature = self.signature_name
        self._serialized = examples.parse_examples(request, api)
        if trace is not None:
            trace.examples = self._serialized
        self._api = api
        self._trace = trace
        self.target = target
        self.runtime_api = api.capitalize()
        self.example_count = len(self._serialized)

    def run(self, servable: Servable, deadline: Deadline) -> tuple:
        """(classes, scores) of a classify, (values,) of a regress."""
        trace = self._trace
        if self._api == "classify":
            classes, scores = servable.classify(self.signature_name, self._serialized, deadline)
            if trace is not None:
                trace.classes, trace.scores = classes, scores
            return classes, scores
        values = servable.regress(self.signature_name, self._serialized, deadline)
        if trace is not None:
            trace.values = values
        return (values,)

    def response(self, version: int, result: tuple) -> bytes:
        if self._api == "classify":
            return examples.format_classify_response(*result)
        return examples.format_regress_response(*result)


def _watcher(scope: dict) -> Callable[[Ticket], None]:
    """Cancels the request's ticket when its connection is lost (the protocol calls
    `scope[ON_DISCONNECT]`, `uvicorn_protocol.py`): its admission slot is free at once."""
    def watch(ticket: Ticket) -> None:
        scope[ON_DISCONNECT] = ticket.cancel
    return watch


def _target(match: re.Match) -> tuple[str, int | None, str | None, str]:
    """(model name, version, label, last group) of a grammar match, names percent-decoded."""
    name, version_text, label, last = match.groups()
    version = None
    if version_text is not None:
        version = int(version_text)
        if version > _INT64_MAX:
            raise InvalidArgument(f"Failed to convert version: {version_text} to numeric.")
    return unquote(name), version, unquote(label) if label is not None else None, last


def _malformed(method: str, path: str) -> ServingError:
    return InvalidArgument(f"Malformed request: {method} {path}")


def _to_dict(message: Any) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


def _header(scope: dict, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def _gunzip(body: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, limit + 1)
    except zlib.error as error:
        raise InvalidArgument(f"Failed to decompress the gzip request body: {error}") from None
    if len(data) > limit:
        raise _BodyTooLarge
    return data


async def _send(send: Callable, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
