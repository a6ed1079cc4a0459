"""The TensorFlow Serving REST API as a raw ASGI app (run by uvicorn with httptools + uvloop).

Routes (spec §1.1): `/v1/...` paths follow TF Serving's URL grammar, matched case-insensitively on
the raw percent-encoded path, names and labels percent-decoded afterwards:

    POST /v1/models/{NAME}[/versions/{V}|/labels/{L}]:{predict|classify|regress}
    GET  /v1/models/{NAME}[/versions/{V}|/labels/{L}][/metadata]

Every other /v1 request is `400 Malformed request: {METHOD} {PATH}`; OPTIONS is a CORS preflight;
the Prometheus path (when enabled) serves metrics; any other path is libevent's HTML 404. Every /v1
answer is JSON (`Content-Type: application/json`), errors are `{"error": "..."}` with TF Serving's
status code for the canonical code.

Why raw ASGI rather than Starlette routing: on this machine a hello-world under the same uvicorn
answered ~54k requests/s raw versus ~23k through a Starlette catch-all route; the grammar is one
precompiled regex per method either way.

Threading: the event loop only reads bodies and writes answers. Each predict/classify/regress runs
whole (JSON parse, conversion, model run, serialization) in a worker thread pool, bounded by
`--rest_api_timeout_in_ms` (504 DEADLINE_EXCEEDED; the worker finishes in the background, as a TF
session run would). With batching (`--enable_batching`, on by default) a predict's model run and
serialization may happen in another worker, the one running the batch its request joined; its own
worker is free meanwhile.
Either way the answer reaches the loop with one `call_soon_threadsafe`. Status and metadata are
cheap and answered on the loop. Responses leave in one write (`http_protocol`).
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

from pipeline.serving import json_tensor
from pipeline.serving.json_tensor import HTTP_STATUS, RestError
from pipeline.serving.manager import ServableManager
from pipeline.serving.metrics import ServerMetrics
from pipeline.serving.servable import ServingError

log = logging.getLogger(__name__)

_NAME = r"([^/:]+)"
_VERSION_OR_LABEL = rf"(?:/versions/(\d+)|/labels/{_NAME})?"
POST_PATH = re.compile(rf"/v1/models/{_NAME}{_VERSION_OR_LABEL}:([^/:]+)", re.IGNORECASE)
GET_PATH = re.compile(rf"/v1/models(?:/{_NAME})?{_VERSION_OR_LABEL}(?:/(metadata))?", re.IGNORECASE)
_ORIGIN = re.compile(r"https?://")
_INT64_MAX = 2**63 - 1

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

    def __init__(self, manager: ServableManager, options: HttpOptions, metrics: ServerMetrics | None = None):
        self.manager = manager
        self.options = options
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(max_workers=options.num_threads, thread_name_prefix="rest-worker")
        self._known_models = frozenset(manager.model_names)
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
        try:
            if method == "POST" and (match := POST_PATH.fullmatch(path)):
                if match.group(4) not in ("predict", "classify", "regress"):  # `:Predict` too
                    raise _malformed(method, path)
                model_name, version, label, api = _target(match)
                body = await self._read_body(scope, receive)
                result = await self._in_worker(self._infer, api, model_name, version, label, body)
            elif method == "GET" and (match := GET_PATH.fullmatch(path)):
                if match.group(1) is None:
                    raise RestError("INVALID_ARGUMENT", "Missing model name in request.")
                model_name, version, label, _ = _target(match)
                api = "metadata" if match.group(4) == "metadata" else "status"
                if api == "metadata":
                    result = self._metadata(model_name, version, label)
                else:
                    result = self._status(model_name, version)
            else:
                raise _malformed(method, path)
            return 200, result
        except (RestError, ServingError) as error:
            code = error.code
            return HTTP_STATUS.get(error.code, 500), json_tensor.error_body(error.message)
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
            if self.metrics is not None and api is not None and model_name in self._known_models:
                self.metrics.record_request(model_name, api, code, time.perf_counter() - started)

    async def _in_worker(self, function: Callable[..., None], *args: Any) -> bytes:
        """The body `function(answer, *args)` produces in a worker thread. It calls `answer(body, None)`
        or `answer(None, error)` once, from any thread (a batch may answer it from another), or
        raises. One loop wake-up per request; the timeout is a loop timer (504 DEADLINE_EXCEEDED),
        and the work then finishes in the background."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def answer(body: bytes | None, error: BaseException | None) -> None:
            try:  # noqa: SIM105 - hot path: no context manager
                loop.call_soon_threadsafe(_resolve, waiter, body, error)
            except RuntimeError:  # the loop closed: the server is shutting down
                pass

        self.executor.submit(_call_answering, function, answer, *args)
        timeout = self.options.timeout_seconds
        timer = loop.call_later(timeout, _expire, waiter, timeout) if timeout is not None else None
        try:
            return await waiter
        finally:
            if timer is not None:
                timer.cancel()

    def _infer(self, answer: Answer, api: str, model_name: str, version: int | None, label: str | None,
               body: bytes) -> None:
        """The whole of predict/classify/regress, in TF Serving's order of checks (spec §2.2)."""
        request = json_tensor.parse_json_body(body)
        signature_name = json_tensor.signature_name_of(request)
        if api == "predict":
            servable = self.manager.servable(model_name, version, label)
            signature = servable.predict_signature(signature_name)
            form, inputs = json_tensor.parse_predict_inputs(request, signature.input_dtypes)

            def done(outputs: dict | None, error: BaseException | None) -> None:
                if error is None:
                    try:
                        body = json_tensor.format_predict_response(form, outputs)  # type: ignore[arg-type]
                    except Exception as format_error:  # noqa: BLE001 - answered like any other error
                        error = format_error
                    else:
                        return answer(body, None)
                answer(None, error)

            servable.run_async(signature, inputs, done)
            return
        examples = json_tensor.parse_examples(request, api)
        servable = self.manager.servable(model_name, version, label)
        if api == "classify":
            answer(json_tensor.format_classify_response(*servable.classify(signature_name, examples)), None)
        else:
            answer(json_tensor.format_regress_response(servable.regress(signature_name, examples)), None)

    def _status(self, model_name: str, version: int | None) -> bytes:
        response = self.manager.model_status(model_name, version)  # labels are ignored, as in TF Serving
        return json_tensor.dumps(_to_dict(response))

    def _metadata(self, model_name: str, version: int | None, label: str | None) -> bytes:
        servable = self.manager.servable(model_name, version, label)
        spec = model_pb2.ModelSpec(name=model_name, version=wrappers_pb2.Int64Value(value=servable.version))
        return json_tensor.dumps({"model_spec": _to_dict(spec), "metadata": servable.metadata_dict})

    async def _read_body(self, scope: dict, receive: Callable) -> bytes:
        """The request body, gunzipped if `Content-Encoding: gzip`, or _BodyTooLarge past the limit."""
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
        if _header(scope, b"content-encoding").strip().lower() == "gzip":
            body = _gunzip(body, limit)
        return body


Answer = Callable[[bytes | None, BaseException | None], None]


def _call_answering(function: Callable[..., None], answer: Answer, *args: Any) -> None:
    """Worker-thread entry: what `function` raises is its answer."""
    try:
        function(answer, *args)
    except BaseException as error:  # noqa: BLE001 - becomes the request's error answer
        answer(None, error)


def _resolve(waiter: asyncio.Future, body: bytes | None, error: BaseException | None) -> None:
    if waiter.done():  # timed out or cancelled already
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(body)


def _expire(waiter: asyncio.Future, timeout: float) -> None:
    _resolve(waiter, None, RestError("DEADLINE_EXCEEDED", f"Request timed out after {round(timeout * 1000)} "
                                     "ms (--rest_api_timeout_in_ms)"))


def _target(match: re.Match) -> tuple[str, int | None, str | None, str]:
    """(model name, version, label, last group) of a grammar match, names percent-decoded."""
    name, version_text, label, last = match.groups()
    version = None
    if version_text is not None:
        version = int(version_text)
        if version > _INT64_MAX:
            raise RestError("INVALID_ARGUMENT", f"Failed to convert version: {version_text} to numeric.")
    return unquote(name), version, unquote(label) if label is not None else None, last


def _malformed(method: str, path: str) -> RestError:
    return RestError("INVALID_ARGUMENT", f"Malformed request: {method} {path}")


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
        raise RestError("INVALID_ARGUMENT", f"Failed to decompress the gzip request body: {error}") from None
    if len(data) > limit:
        raise _BodyTooLarge
    return data


class _CoalescingTransport:
    """A transport whose writes made in one event-loop turn leave in one send() call.

    uvicorn writes a response's head and its body separately: two syscalls and two TCP segments per
    answer, a quarter of the event loop's time in profiles of small predicts. Pending bytes go out
    at the end of the turn (`call_soon`), and before `close`. Everything else is the transport's.
    """

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def http_protocol() -> type:
    """uvicorn's httptools protocol with `_CoalescingTransport`, for `uvicorn.Config(http=...)`."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    return CoalescingHttpToolsProtocol


async def _send(send: Callable, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
