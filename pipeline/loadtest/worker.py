"""One load-generating worker process: many clients on one asyncio loop.

REST clients speak HTTP/1.1 over kept-alive connections with a prebuilt request (the bytes are
made once in the parent) and parse answers with httptools on uvloop, as uvicorn does. gRPC clients
send a prebuilt serialized ``PredictRequest`` through ``grpc.aio`` with no (de)serializers: bytes
in, bytes out, no protobuf and no TensorFlow in the worker. A worker takes one :class:`LevelPlan`
at a time from its pipe and answers with a :class:`~pipeline.loadtest.results.WorkerReport`;
every 0.5 s of a level it also sends its running counts, for live charts.

Closed loop: each client sends its next request when the last one is answered. Open loop: requests
start on a fixed schedule (``rate`` per second) on whatever connection is free, at most ``clients``
in flight; a request the cap leaves no room for is counted as ``generator: in-flight limit``.
A level ends when its window ends or the shared stop event is set; requests still in flight are
abandoned (they would end outside the window). The worker leaves when the parent goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import resource
import signal
import socket
import ssl
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.loadtest.results import OK, WorkerReport

PROGRESS_S = 0.5
WATCH_S = 0.05
RETRY_S = 0.05
"""Pause before a client that could not connect tries again (so a dead server is not spun on)."""
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

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, target: Target) -> HttpConnection:
        context = ssl.create_default_context() if target.tls else None
        _, protocol = await loop.create_connection(lambda: cls(loop), target.host, target.port, ssl=context)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

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
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def _fail(self, error: BaseException) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

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

    def close(self) -> None:
        self.closed = True
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
        connection = None
        while True:
            connection, failed = await self.one(client, time.perf_counter(), connection)
            if failed:
                await asyncio.sleep(RETRY_S)

    async def scheduled(self, client: int, started: float) -> None:
        connection = self.idle.pop() if self.idle else None
        connection, _ = await self.one(client, started, connection)
        if connection is not None:
            self.idle.append(connection)

    def close(self) -> None:
        for connection in self.open:
            connection.close()


class GrpcClients:
    """The gRPC side of a level: a few channels (HTTP/2 connections), requests spread over them."""

    CHANNELS = 4

    def __init__(self, plan: LevelPlan, tally: Tally) -> None:
        import grpc

        self.plan, self.tally, self.grpc = plan, tally, grpc
        options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1),
                   ("grpc.max_send_message_length", -1)]
        count = max(1, min(self.CHANNELS, plan.clients))
        address = plan.target.address
        self.channels = [grpc.aio.insecure_channel(address, options=options) for _ in range(count)]
        self.calls = [channel.unary_unary(plan.target.method) for channel in self.channels]

    async def one(self, client: int, started: float) -> None:
        call = self.calls[client % len(self.calls)]
        try:
            await call(self.plan.target.payload, timeout=self.plan.timeout_s)
        except self.grpc.aio.AioRpcError as error:
            code = error.code()
            if code == self.grpc.StatusCode.UNAVAILABLE and "connect" in (error.details() or "").lower():
                self.tally.failure("connection refused", error)
                await asyncio.sleep(RETRY_S)
            elif code == self.grpc.StatusCode.DEADLINE_EXCEEDED:
                self.tally.failure("timeout", error)
            else:
                self.tally.answer(client, started, False, f"gRPC {code.name}", error)
            return
        self.tally.answer(client, started, True, OK)

    async def closed_loop(self, client: int) -> None:
        while True:
            await self.one(client, time.perf_counter())

    async def scheduled(self, client: int, started: float) -> None:
        await self.one(client, started)

    async def aclose(self) -> None:
        for channel in self.channels:
            await channel.close(None)


async def _open_loop(clients: Any, plan: LevelPlan, tally: Tally, tasks: set[asyncio.Task]) -> None:
    """Start requests on schedule (every ``1 / rate`` s from the warm-up's start), at most
    ``plan.clients`` in flight; latencies count from the scheduled time."""
    interval = 1.0 / plan.rate
    due = tally.begin - plan.warmup_s
    count = 0
    while True:
        now = time.perf_counter()
        while due <= now:
            if len(tasks) >= plan.clients:
                tally.failure("generator: in-flight limit",
                              f"{plan.clients} requests already in flight (raise the concurrency cap)")
            else:
                task = asyncio.ensure_future(clients.scheduled(count, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            count += 1
            due += interval
        await asyncio.sleep(max(0.0, due - time.perf_counter()))


async def run_level(plan: LevelPlan, stop: Any,
                    progress: Callable[[Tally], None] | None = None) -> WorkerReport:
    """Run this worker's share of one level and return what it measured."""
    tally = Tally(plan)
    clients: Any = GrpcClients(plan, tally) if plan.target.transport == GRPC else RestClients(plan, tally)
    start = tally.begin - plan.warmup_s
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    tasks: set[asyncio.Task] = set()
    if plan.rate is None:
        tasks.update(asyncio.ensure_future(clients.closed_loop(i)) for i in range(plan.clients))
        driver = None
    else:
        driver = asyncio.ensure_future(_open_loop(clients, plan, tally, tasks))
    next_progress = time.perf_counter() + PROGRESS_S
    try:
        while time.perf_counter() < tally.end:
            if stop.is_set():
                tally.stopped_at = time.perf_counter()
                break
            if progress is not None and time.perf_counter() >= next_progress:
                progress(tally)
                next_progress += PROGRESS_S
            await asyncio.sleep(min(WATCH_S, max(0.0, tally.end - time.perf_counter())))
    finally:
        for task in [*tasks, *([driver] if driver else [])]:
            task.cancel()
        await asyncio.gather(*tasks, *([driver] if driver else []), return_exceptions=True)
        if isinstance(clients, GrpcClients):
            await clients.aclose()
        else:
            clients.close()
    return tally.report(plan.clients)


def probe(target: Target, timeout_s: float) -> tuple[str, str, float]:
    """Send one request the way the workers will, in this process: ``(kind, message, seconds)``
    with kind ``OK`` for a success (used before a sweep to say at once what is wrong)."""
    plan = LevelPlan(target, 1, None, time.time(), 0.0, timeout_s + 1.0, timeout_s)
    found: dict[str, Any] = {}

    async def once() -> None:
        tally = Tally(plan)
        clients: Any = GrpcClients(plan, tally) if target.transport == GRPC else RestClients(plan, tally)
        started = time.perf_counter()
        try:
            if isinstance(clients, GrpcClients):
                await clients.one(0, started)
            else:
                await clients.one(0, started, None)
        finally:
            found["seconds"] = time.perf_counter() - started
            if isinstance(clients, GrpcClients):
                await clients.aclose()
            else:
                clients.close()
        kind = next(iter(tally.kinds), "no answer")
        found["kind"], found["message"] = kind, tally.examples.get(kind, "")

    asyncio.run(once())
    return found["kind"], found["message"], found["seconds"]


def _new_loop(transport: str) -> asyncio.AbstractEventLoop:
    if transport == REST:
        with contextlib.suppress(ImportError):
            import uvloop

            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _ParentWatch:
    """The stop event, also set when the parent process is gone (so a worker never outlives it)."""

    def __init__(self, event: Any, parent: int) -> None:
        self.event, self.parent = event, parent

    def is_set(self) -> bool:
        return self.event.is_set() or os.getppid() != self.parent


def main(worker_id: int, pipe: Any, stop: Any, parent: int) -> None:
    """A worker's life: announce itself, then run each plan received until ``None`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a run stops (Ctrl+C)
    _raise_open_files()
    watch = _ParentWatch(stop, parent)
    pipe.send(("ready", worker_id))
    while True:
        try:
            plan = pipe.recv()
        except (EOFError, OSError):
            return
        if plan is None:
            return

        def progress(tally: Tally) -> None:
            errors = sum(v for k, v in tally.kinds.items() if k != OK)
            pipe.send(("progress", worker_id, tally.kinds.get(OK, 0), errors))

        loop = _new_loop(plan.target.transport)
        try:
            report = loop.run_until_complete(run_level(plan, watch, progress))
        except Exception as error:  # noqa: BLE001 - the parent reports it and ends the run
            pipe.send(("failed", worker_id, f"{type(error).__name__}: {error}"))
            return
        finally:
            loop.close()
        pipe.send(("done", worker_id, report))
