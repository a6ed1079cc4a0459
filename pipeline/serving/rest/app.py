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

Threading: the event loop only reads bodies and writes answers. Each predict/classify/regress is
read by the loop, then admitted by the core's `Admission` (past `--max_pending_requests` it is
answered 503 at once, before any parsing or queueing; a slow upload holds no slot), then runs whole
(JSON parse, conversion, model run, serialization) in a worker thread pool, bounded by
`--rest_api_timeout_in_ms` (504 DEADLINE_EXCEEDED). Its `Deadline` goes with it: the model call
gets the time left as `RunOptions.timeout_in_ms` and stops there (`Timed out waiting for
notification`, as TF Serving answers), and a request whose deadline passed before a worker or its
batch got to it is dropped without model work (counted in `tensorflow_serving_dropped_request_count`).
With batching (`--enable_batching`, off by default as in TF Serving) a predict's model run and
serialization may happen in another worker, the one running the batch its request joined; its own
worker is free meanwhile.
Either way the answer reaches the loop with one `call_soon_threadsafe`. Status and metadata are
cheap and answered on the loop. Responses leave in one write (`uvicorn_protocol.py`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from google.protobuf import json_format, wrappers_pb2
from tensorflow_serving.apis import model_pb2

from pipeline.serving.errors import ServingError, invalid
from pipeline.serving.manager import ServableManager
from pipeline.serving.metrics import ServerMetrics
from pipeline.serving.overload import Admission, Deadline
from pipeline.serving.rest import examples, json_tensor
from pipeline.serving.rest.http_status import http_status
from pipeline.serving.rest.json_body import parse_json_body, signature_name_of

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
    """ASGI callable serving one ServableManager. Create once per server; thread-safe by design
    (all mutable state lives in the manager and the metrics)."""

    def __init__(self, manager: ServableManager, options: HttpOptions, metrics: ServerMetrics | None = None,
                 admission: Admission | None = None):
        self.manager = manager
        self.options = options
        self.metrics = metrics
        self.admission = admission
        self.executor = ThreadPoolExecutor(max_workers=options.num_threads, thread_name_prefix="rest-worker")
        self._extra_headers = _JSON + (_CORS if options.enable_cors else [])

    def close(self) -> None:
        """Stop the worker threads once running requests end."""
        self.executor.shutdown(wait=False, cancel_futures=True)

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
        model_name, api, code = None, None, "OK"
        verb = ""  # the `API` label: the URL's verb, "" for status and metadata (as TF Serving)
        try:
            if method == "POST" and (match := POST_PATH.fullmatch(path)):
                model_name, version, label, verb = _target(match)
                if verb not in ("predict", "classify", "regress"):  # `:Predict` too
                    raise _malformed(method, path)
                api = verb
                body = await self._read_body(scope, receive)
                if self.admission is not None:  # after the body: a slow upload never holds a slot
                    try:
                        self.admission.enter()
                    except ServingError:
                        self._count_drop(model_name, "overloaded")
                        raise
                result = await self._in_worker(self._infer, api, model_name, version, label, body)
            elif method == "GET" and path.lower() == LIST_PATH:
                names = sorted(self.manager.model_names)  # not one model's request: no metrics
                result = json_tensor.dumps({"models": [{"name": name} for name in names]})
            elif method == "GET" and (match := GET_PATH.fullmatch(path)):
                if match.group(1) is None:
                    raise invalid("Missing model name in request.")
                model_name, version, label, _ = _target(match)
                api = "metadata" if match.group(4) == "metadata" else "status"
                if api == "metadata":
                    result = self._metadata(model_name, version, label)
                else:
                    result = self._status(model_name, version)
            else:
                raise _malformed(method, path)
            return 200, result
        except ServingError as error:
            code = error.code
            return http_status(code), json_tensor.error_body(error.message)
        except _BodyTooLarge:
            code = "RESOURCE_EXHAUSTED"
            raise
        except _ClientGone:
            code = "CANCELLED"
            raise
        except Exception as error:  # a bug must cost one request, never the server
            code = "INTERNAL"
            log.exception("Internal error serving %s %s", method, path)
            return 500, json_tensor.error_body(f"Internal error: {type(error).__name__}: {error}")
        finally:
            if self.metrics is not None:  # every /v1 request, as TF Serving counts them
                self.metrics.record_request(model_name, verb, "REST", code, time.perf_counter() - started)

    async def _in_worker(self, function: Callable[..., None], api: str, model_name: str, *args: Any) -> bytes:
        """The body `function(answer, deadline, api, model_name, *args)` produces in a worker thread,
        for a request `admission` let in (left here once answered). It calls `answer(body, None)` or
        `answer(None, error)` once, from any thread (a batch may answer it from another), or raises.
        One loop wake-up per request. The request's `Deadline` goes with the work: a model call
        stops at it (TensorFlow's `RunOptions.timeout_in_ms`) and work not yet started is dropped; a
        loop timer `BACKSTOP_SECONDS` later answers 504 DEADLINE_EXCEEDED if nothing answered."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        admission = self.admission

        def answer(body: bytes | None, error: BaseException | None) -> None:
            if admission is not None:
                admission.leave()
            try:  # noqa: SIM105 - hot path: no context manager
                loop.call_soon_threadsafe(_resolve, waiter, body, error)
            except RuntimeError:  # the loop closed: the server is shutting down
                pass

        timeout = self.options.timeout_seconds
        deadline = Deadline(timeout)
        try:
            self.executor.submit(self._start, function, answer, deadline, api, model_name, *args)
        except RuntimeError:  # the pool is shut down: the server is stopping
            if admission is not None:
                admission.leave()
            raise ServingError("UNAVAILABLE", "Server is shutting down") from None
        timer = (loop.call_later(timeout + BACKSTOP_SECONDS, _expire, waiter, deadline)
                 if timeout is not None else None)
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()

    def _start(self, function: Callable[..., None], answer: Answer, deadline: Deadline, api: str,
               model_name: str, *args: Any) -> None:
        """Worker-thread entry: drop a request whose deadline passed while it queued for a worker;
        otherwise run `function`, whose exception is its answer."""
        if deadline.expired():
            self._count_drop(model_name, "deadline_exceeded")
            answer(None, deadline.error())
            return
        try:
            function(answer, deadline, api, model_name, *args)
        except BaseException as error:  # noqa: BLE001 - becomes the request's error answer
            answer(None, error)

    def _count_drop(self, model_name: str, reason: str) -> None:
        if self.metrics is not None and self.manager.serves(model_name):
            self.metrics.record_dropped(model_name, reason)

    def _infer(self, answer: Answer, deadline: Deadline, api: str, model_name: str, version: int | None,
               label: str | None, body: bytes) -> None:
        """The whole of predict/classify/regress, in TF Serving's order of checks (spec §2.2)."""
        request = parse_json_body(body)
        signature_name = signature_name_of(request)
        metrics = self.metrics
        if api == "predict":
            servable = self.manager.servable(model_name, version, label)
            signature = servable.predict_signature(signature_name)
            form, inputs = json_tensor.parse_predict_inputs(request, signature.input_dtypes)
            started = time.perf_counter()

            def done(outputs: dict | None, error: BaseException | None) -> None:
                if error is None:
                    if metrics is not None:
                        metrics.record_runtime(model_name, "Predict", time.perf_counter() - started)
                    try:
                        body = json_tensor.format_predict_response(form, outputs)  # type: ignore[arg-type]
                    except Exception as format_error:  # noqa: BLE001 - answered like any other error
                        error = format_error
                    else:
                        return answer(body, None)
                answer(None, error)

            servable.run_async(signature, inputs, done, deadline)
            return
        serialized = examples.parse_examples(request, api)
        servable = self.manager.servable(model_name, version, label)
        started = time.perf_counter()
        if api == "classify":
            classes, scores = servable.classify(signature_name, serialized, deadline)
            body = examples.format_classify_response(classes, scores)
        else:
            body = examples.format_regress_response(servable.regress(signature_name, serialized, deadline))
        if metrics is not None:
            metrics.record_runtime(model_name, api.capitalize(), time.perf_counter() - started)
            metrics.record_examples(model_name, len(serialized))
        answer(body, None)

    def _status(self, model_name: str, version: int | None) -> bytes:
        response = self.manager.model_status(model_name, version)  # labels are ignored, as in TF Serving
        return json_tensor.pretty_proto_json(_to_dict(response))

    def _metadata(self, model_name: str, version: int | None, label: str | None) -> bytes:
        """The metadata answer laid out as TF Serving's handler concatenates it: the ModelSpec and the
        SignatureDefMap each printed by protobuf with whitespace, inside a hand-written object."""
        servable = self.manager.servable(model_name, version, label)
        spec = model_pb2.ModelSpec(name=model_name, version=wrappers_pb2.Int64Value(value=servable.version))
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


Answer = Callable[[bytes | None, BaseException | None], None]


def _resolve(waiter: asyncio.Future, body: bytes | None, error: BaseException | None) -> None:
    if waiter.done():  # timed out or cancelled already
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(body)


def _expire(waiter: asyncio.Future, deadline: Deadline) -> None:
    deadline.abandon()
    limit_ms = round((deadline.seconds or 0) * 1000)
    _resolve(waiter, None, ServingError("DEADLINE_EXCEEDED",
                                        f"Request timed out after {limit_ms} ms (--rest_api_timeout_in_ms)"))


def _target(match: re.Match) -> tuple[str, int | None, str | None, str]:
    """(model name, version, label, last group) of a grammar match, names percent-decoded."""
    name, version_text, label, last = match.groups()
    version = None
    if version_text is not None:
        version = int(version_text)
        if version > _INT64_MAX:
            raise invalid(f"Failed to convert version: {version_text} to numeric.")
    return unquote(name), version, unquote(label) if label is not None else None, last


def _malformed(method: str, path: str) -> ServingError:
    return invalid(f"Malformed request: {method} {path}")


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
        raise invalid(f"Failed to decompress the gzip request body: {error}") from None
    if len(data) > limit:
        raise _BodyTooLarge
    return data


async def _send(send: Callable, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
