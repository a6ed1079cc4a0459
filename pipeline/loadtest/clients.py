"""The load generator's clients: what one request is, how its outcome is counted, and the REST
clients that send it (used by `pipeline.loadtest.worker`, one uvloop loop per worker process; the
gRPC ones are in `pipeline.loadtest.grpc_clients`, over `pipeline.loadtest.grpc_wire`).

REST clients speak HTTP/1.1 over kept-alive connections with a prebuilt request (the bytes are made
once in the parent) and parse answers with httptools, as uvicorn does. In a closed loop the next
request is written from the callback that read the last answer (:meth:`HttpConnection.repeat`): no
task switch, future or timer per request, so the generator spends about half the CPU per request it
would spend awaiting each answer in a coroutine, and one ``epoll_wait`` instead of two, which is what
keeps it close to wrk at low concurrency on a busy machine. The gRPC clients work the same way
over HTTP/2 framed by hand. A :class:`Tally` counts only requests that end inside the measured
window; errors are counted by kind (``HTTP 400``, ``gRPC NOT_FOUND``, ``connection refused``) with
the first message of each kind kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import ssl
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.loadtest.results import OK, WorkerReport

RETRY_S = 0.05
"""Pause before a client that could not connect tries again (so a dead server is not spun on)."""
GRPC_CONNECTIONS = 4
"""A gRPC level's HTTP/2 connections (fewer when fewer clients), its clients' calls multiplexed on
them: h2load's shape in the bench (``-c min(n, 4) -m n/c``), and a gRPC client's (one channel)."""
EXAMPLE_CHARS = 300
REST, GRPC = "REST", "gRPC"


@dataclass(frozen=True)
class Target:
    """Where requests go and what they are: ``payload`` is the whole HTTP request (REST) or the
    serialized ``PredictRequest`` (gRPC, sent to ``method``)."""

    transport: str
    host: str
    port: int
    payload: bytes
    tls: bool = False
    method: str = ""

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class LevelPlan:
    """This worker's share of one level. ``start_at`` is wall-clock time (``time.time()``) when the
    warm-up starts, the same for every worker; the measured window follows the warm-up."""

    target: Target
    clients: int
    rate: float | None
    start_at: float
    warmup_s: float
    duration_s: float
    timeout_s: float
    connections: int = 0
    """gRPC: the HTTP/2 connections this worker's clients share (its part of the level's
    :data:`GRPC_CONNECTIONS`); 0 means as many as clients, at most :data:`GRPC_CONNECTIONS`."""


def no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn off Nagle's algorithm on a TCP transport, so a small request or answer goes out at once."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def error_kind(error: BaseException) -> str:
    """A short name for a failure that got no answer."""
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "host not found"
    if isinstance(error, ssl.SSLError):
        return "TLS error"
    if isinstance(error, ConnectionError | EOFError):
        return "connection reset"
    if isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE):
        return "generator: too many open files"
    if isinstance(error, OSError) and error.errno == errno.EADDRNOTAVAIL:
        return "generator: no free local port"
    if isinstance(error, OSError) and error.errno:
        return f"connection failed: {errno.errorcode.get(error.errno, error.errno)}"
    return f"failed: {type(error).__name__}"


def http_error_text(body: bytes) -> str:
    """TF Serving's ``{"error": ...}`` message of an error answer, else its text."""
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError, AttributeError):
        message = json.loads(text).get("error")
        if message:
            text = str(message)
    return text[:EXAMPLE_CHARS]


def example_text(detail: Any, kind: str) -> str:
    """The words that explain one error: TF Serving's message in an HTTP answer's body, a gRPC
    error's details, an exception's text."""
    if isinstance(detail, bytes | bytearray):
        return http_error_text(bytes(detail))
    if hasattr(detail, "details") and callable(detail.details):
        return (detail.details() or kind)[:EXAMPLE_CHARS]
    return (str(detail) or kind)[:EXAMPLE_CHARS]


class Tally:
    """One level's counts in one worker; only requests ending inside the window count."""

    def __init__(self, plan: LevelPlan) -> None:
        offset = time.time() - time.perf_counter()
        self.begin = plan.start_at + plan.warmup_s - offset
        self.end = self.begin + plan.duration_s
        self.latencies = array("d")
        self.kinds: dict[str, int] = {}
        self.examples: dict[str, str] = {}
        self.answered = 0
        self.connected: set[int] = set()
        self.stopped_at: float | None = None

    def answer(self, client: int, started: float, ok: bool, kind: str, detail: Any = None) -> None:
        """An answer (any status) to a request started at ``started`` (perf_counter); ``detail`` is
        what explains an error (the answer's body, the exception), read only for the first one."""
        self.connected.add(client)
        now = time.perf_counter()
        if not self.begin <= now <= self.end:
            return
        self.answered += 1
        self.latencies.append(now - started)
        self._count(OK if ok else kind, detail)

    def failure(self, kind: str, detail: Any = None) -> None:
        """A request that got no answer."""
        if self.begin <= time.perf_counter() <= self.end:
            self._count(kind, detail)

    def _count(self, kind: str, detail: Any) -> None:
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        if kind != OK and kind not in self.examples and detail is not None:
            self.examples[kind] = example_text(detail, kind)

    def report(self, clients: int) -> WorkerReport:
        last = self.stopped_at if self.stopped_at is not None else self.end
        covered = max(0.0, min(last, self.end) - self.begin)
        return WorkerReport(self.latencies.tobytes(), dict(self.kinds), dict(self.examples), self.answered,
                            clients, len(self.connected), covered)


class HttpConnection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection; :meth:`exchange` sends the request and returns
    ``(status, error body)`` once the whole answer has been read."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        import httptools

        self.loop = loop
        self.parser = httptools.HttpResponseParser(self)
        self.parse_error = httptools.HttpParserError
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.body = bytearray()
        self.closed = False
        self.keep_alive = True
        self.payload = b""
        self.sent_at = 0.0
        self.answered: Callable[[float, int, bytearray], None] | None = None
        """Set while :meth:`repeat` runs: called with (sent at, status, error body) per answer."""
        self.watch: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, target: Target) -> HttpConnection:
        context = ssl.create_default_context() if target.tls else None
        _, protocol = await loop.create_connection(lambda: cls(loop), target.host, target.port, ssl=context)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self.parse_error as error:
            self._fail(ConnectionResetError(f"not an HTTP answer: {error}"))
            self.close()

    def on_message_begin(self) -> None:
        self.body.clear()

    def on_body(self, body: bytes) -> None:
        if self.parser.get_status_code() >= 300 and len(self.body) < 4096:
            self.body += body

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        if self.answered is not None:  # repeating: count this answer, send the next request at once
            self.answered(self.sent_at, self.parser.get_status_code(), self.body)
            if self.keep_alive and not self.closed and self.answered is not None:
                self.sent_at = time.perf_counter()
                self.transport.write(self.payload)  # type: ignore[union-attr]
            else:
                self._finish()
            return
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def _fail(self, error: BaseException) -> None:
        self._stop_repeating()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

    def _finish(self) -> None:
        self._stop_repeating()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _stop_repeating(self) -> None:
        self.answered = None
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None

    def _timed_out(self) -> None:
        self._fail(TimeoutError())
        self.close()

    async def exchange(self, payload: bytes, timeout_s: float) -> int:
        self.waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout_s, self._timed_out)
        try:
            self.transport.write(payload)  # type: ignore[union-attr]
            return await self.waiter
        finally:
            timer.cancel()

    def repeat(self, payload: bytes, timeout_s: float,
               answered: Callable[[float, int, bytearray], None]) -> asyncio.Future:
        """Send ``payload``, and again each time an answer is complete, calling ``answered`` with
        (sent at, status, error body) for each; the returned future ends with None when the server
        does not keep the connection alive, with the error when it fails, or with ``TimeoutError``
        when an answer takes longer than ``timeout_s`` (checked every quarter of it). Closing the
        connection (or cancelling the future's awaiter and closing it) stops the repeating."""
        self.waiter = self.loop.create_future()
        self.payload, self.answered = payload, answered
        self.sent_at = time.perf_counter()
        self.transport.write(payload)  # type: ignore[union-attr]
        self.watch = self.loop.call_later(timeout_s / 4, self._check_deadline, timeout_s)
        return self.waiter

    def _check_deadline(self, timeout_s: float) -> None:
        if self.answered is None:
            return
        if time.perf_counter() - self.sent_at > timeout_s:
            self._timed_out()
        else:
            self.watch = self.loop.call_later(timeout_s / 4, self._check_deadline, timeout_s)

    def close(self) -> None:
        self.closed = True
        self._stop_repeating()
        if self.transport is not None:
            self.transport.close()


class RestClients:
    """The REST side of a level: connections opened on demand, reused while kept alive."""

    def __init__(self, plan: LevelPlan, tally: Tally) -> None:
        self.plan, self.tally = plan, tally
        self.loop = asyncio.get_running_loop()
        self.idle: list[HttpConnection] = []
        self.open: list[HttpConnection] = []

    async def one(self, client: int, started: float,
                  connection: HttpConnection | None) -> tuple[HttpConnection | None, bool]:
        """One request (connecting first if needed): the connection if it can be reused, and
        whether the request failed without an answer."""
        plan = self.plan
        try:
            if connection is None or connection.closed:
                opening = HttpConnection.open(self.loop, plan.target)
                connection = await asyncio.wait_for(opening, plan.timeout_s)
                self.open.append(connection)
            status = await connection.exchange(plan.target.payload, plan.timeout_s)
        except (OSError, EOFError, TimeoutError) as error:
            self.tally.failure(error_kind(error), error)
            if connection is not None:
                connection.close()
            return None, True
        self.tally.answer(client, started, 200 <= status < 300, f"HTTP {status}", connection.body)
        if not connection.keep_alive:
            connection.close()
            return None, False
        return connection, False

    async def closed_loop(self, client: int) -> None:
        """One client's closed loop: connect, then let the connection repeat the request from its
        own callbacks (:meth:`HttpConnection.repeat`); reconnect when the server closes it, pause
        :data:`RETRY_S` after a failure. Cancelled at the level's end: the connection stops too."""
        plan, tally = self.plan, self.tally
        connection: HttpConnection | None = None

        def answered(started: float, status: int, body: bytearray) -> None:
            ok = 200 <= status < 300
            tally.answer(client, started, ok, OK if ok else f"HTTP {status}", body)

        try:
            while True:
                try:
                    if connection is None or connection.closed:
                        connection = await asyncio.wait_for(HttpConnection.open(self.loop, plan.target),
                                                            plan.timeout_s)
                        self.open.append(connection)
                    await connection.repeat(plan.target.payload, plan.timeout_s, answered)
                except (OSError, EOFError, TimeoutError) as error:
                    tally.failure(error_kind(error), error)
                    if connection is not None:
                        connection.close()
                    connection = None
                    await asyncio.sleep(RETRY_S)
                    continue
                connection.close()  # the server did not keep it alive: a new one for the next request
                connection = None
        finally:
            if connection is not None:
                connection.close()

    async def scheduled(self, client: int, started: float) -> None:
        connection = self.idle.pop() if self.idle else None
        connection, _ = await self.one(client, started, connection)
        if connection is not None:
            self.idle.append(connection)

    def close(self) -> None:
        for connection in self.open:
            connection.close()

