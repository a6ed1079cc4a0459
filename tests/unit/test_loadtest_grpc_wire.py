"""The load tool's own HTTP/2 gRPC client, frame by frame: answers read whether their frames come
split across reads or many in one read, errors counted by gRPC code with the server's message,
pings acknowledged, a request larger than the server's windows sent as they open and never beyond
them, GOAWAY obeyed; and against a scripted loopback server, deadlines and a server that closes
its connections mid-run (the level ends, the clients reconnect)."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from typing import Any
from urllib.parse import quote

import hpack
import pytest

from pipeline.loadtest import grpc_wire as wire
from pipeline.loadtest.clients import GRPC, LevelPlan, Target
from pipeline.loadtest.grpc_clients import request_head
from pipeline.loadtest.worker import run_level
from tests.support.http2 import frames
from tests.support.net import wait_for

MESSAGE = b"\x00\x00\x00\x00\x03abc"
METHOD = "/tensorflow.serving.PredictionService/Predict"


def settings(**values: int) -> bytes:
    keys = {"max_streams": 0x3, "window": 0x4, "frame_size": 0x5}
    pairs = b"".join(struct.pack(">HI", keys[key], value) for key, value in values.items())
    return wire.frame(wire.SETTINGS, 0, 0, pairs)


def ok_answer(encoder: hpack.Encoder, stream: int) -> bytes:
    head = encoder.encode([(":status", "200"), ("content-type", "application/grpc")])
    trailers = encoder.encode([("grpc-status", "0")])
    return (wire.frame(wire.HEADERS, wire.END_HEADERS, stream, head)
            + wire.frame(wire.DATA, 0, stream, MESSAGE)
            + wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, stream, trailers))


def error_answer(encoder: hpack.Encoder, stream: int, code: int, message: str) -> bytes:
    """A trailers-only answer, as grpc servers send errors."""
    block = encoder.encode([(":status", "200"), ("content-type", "application/grpc"),
                            ("grpc-status", str(code)), ("grpc-message", quote(message))])
    return wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, stream, block)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def sent(self) -> list[tuple[int, int, int, bytes]]:
        found = frames(bytes(self.written))
        self.written.clear()
        return found


def connection(message: bytes = MESSAGE) -> tuple[wire.GrpcConnection, FakeTransport, list, Any]:
    """A connection on a fake transport; what it reports is (client, answered, kind, detail)."""
    loop = asyncio.new_event_loop()
    ended: list[tuple[int, bool, str, object]] = []

    def report(_: object, call: wire.Call, answered: bool, kind: str, detail: object) -> None:
        ended.append((call[0], answered, kind, detail))

    conn = wire.GrpcConnection(loop, request_head(METHOD, "h:1", 30.0), message, 30.0, report)
    transport = FakeTransport()
    conn.connection_made(transport)
    return conn, transport, ended, loop


def test_answers_are_read_whether_split_across_reads_or_many_in_one_read() -> None:
    encoder = hpack.Encoder()  # indexes as real servers do: later answers' blocks differ from the first's
    server = (settings(frame_size=16384) + ok_answer(encoder, 1)
              + error_answer(encoder, 3, 5, "Servable not found for request: Latest(nope)")
              + wire.frame(wire.PING, 0, 0, b"12345678") + ok_answer(encoder, 5) + ok_answer(encoder, 7))
    outcomes = []
    for pieces in ([server], [server[i:i + 1] for i in range(len(server))], [server[:20], server[20:]]):
        conn, transport, ended, loop = connection()
        for client in range(4):
            assert conn.start((client, time.perf_counter(), None))
        for chunk in pieces:
            conn.data_received(chunk)
        outcomes.append([(client, answered, kind) for client, answered, kind, _ in ended])
        assert ended[1][3] == "Servable not found for request: Latest(nope)"
        frames = transport.sent()
        assert (wire.PING, wire.ACK, 0, b"12345678") in frames  # the ping is acknowledged
        assert (wire.SETTINGS, wire.ACK, 0, b"") in frames
        assert [stream for kind, _, stream, _ in frames if kind == wire.HEADERS] == [1, 3, 5, 7]
        loop.close()
    assert outcomes[0] == [(0, True, "OK"), (1, True, "gRPC NOT_FOUND"), (2, True, "OK"), (3, True, "OK")]
    assert outcomes[1] == outcomes[2] == outcomes[0]


def test_a_request_larger_than_the_windows_goes_as_they_open_and_never_beyond() -> None:
    message = b"\x00" + (100_000).to_bytes(4, "big") + bytes(range(256)) * 390 + b"x" * 160
    conn, transport, ended, loop = connection(message)
    conn.data_received(settings(window=1000, frame_size=16384))
    assert conn.start((0, time.perf_counter(), None))
    granted = {"connection": 65535, "stream": 1000}
    received = bytearray()

    def take() -> bool:
        for kind, flags, stream, payload in transport.sent():
            if kind == wire.DATA:
                assert stream == 1 and len(payload) <= 16384
                granted["connection"] -= len(payload)
                granted["stream"] -= len(payload)
                assert granted["connection"] >= 0 and granted["stream"] >= 0
                received.extend(payload)
                if flags & wire.END_STREAM:
                    return True
        return False

    done = take()
    assert len(received) == 1000  # the stream's window of 1,000 bytes, no more
    while not done:
        increment = 30_000
        granted["connection"] += increment
        granted["stream"] += increment
        conn.data_received(wire.frame(wire.WINDOW_UPDATE, 0, 1, increment.to_bytes(4, "big"))
                           + wire.frame(wire.WINDOW_UPDATE, 0, 0, increment.to_bytes(4, "big")))
        done = take()
    assert bytes(received) == message
    conn.data_received(ok_answer(hpack.Encoder(), 1))
    assert ended[0][:3] == (0, True, "OK")
    loop.close()


def test_goaway_ends_the_calls_it_did_not_take_and_the_rest_finish() -> None:
    conn, transport, ended, loop = connection()
    conn.data_received(settings())
    assert conn.start((0, time.perf_counter(), None)) and conn.start((1, time.perf_counter(), None))
    conn.data_received(wire.frame(wire.GOAWAY, 0, 0, (1).to_bytes(4, "big") + bytes(4) + b"bye"))
    assert [(client, answered, kind) for client, answered, kind, _ in ended] == [
        (1, False, "connection reset")]
    assert "GOAWAY" in ended[0][3] and "bye" in ended[0][3]
    assert not conn.start((2, time.perf_counter(), None))  # no new calls on it
    assert not transport.closed
    conn.data_received(ok_answer(hpack.Encoder(), 1))
    assert ended[-1][:3] == (0, True, "OK") and transport.closed  # the last call done: closed
    loop.close()


def test_a_reset_stream_and_a_missing_status_are_counted_by_grpcs_code() -> None:
    conn, _, ended, loop = connection()
    conn.data_received(settings())
    for client in range(3):
        conn.start((client, time.perf_counter(), None))
    encoder = hpack.Encoder()
    conn.data_received(wire.frame(wire.RST_STREAM, 0, 1, (0x7).to_bytes(4, "big"))
                       + wire.frame(wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 3,
                                    encoder.encode([(":status", "503")]))
                       + error_answer(encoder, 5, 4, "Deadline Exceeded"))
    assert [(c, a, k) for c, a, k, _ in ended] == [
        (0, True, "gRPC UNAVAILABLE"), (1, True, "gRPC UNAVAILABLE"), (2, False, "timeout")]
    loop.close()


def test_not_an_http2_server_is_said() -> None:
    conn, transport, ended, loop = connection()
    conn.data_received(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    assert transport.closed and isinstance(conn.ready.exception(), ConnectionResetError)
    assert "HTTP/2" in str(conn.ready.exception())
    loop.close()


class ScriptedServer:
    """A loopback HTTP/2 server in its own thread: answers each call OK, or stays silent
    (``silent``), or after ``per_connection`` calls sends GOAWAY and closes the connection."""

    def __init__(self, silent: bool = False, per_connection: int = 0) -> None:
        self.silent, self.per_connection = silent, per_connection
        self.connections = 0
        self.resets = 0
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(60)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        encoder, answered = hpack.Encoder(), 0
        try:
            await reader.readexactly(len(wire.PREFACE))
            writer.write(settings(frame_size=16384))
            while True:
                head = await reader.readexactly(9)
                high, low, kind, flags, stream = wire.HEAD.unpack(head)
                await reader.readexactly(high << 16 | low)
                if kind == wire.RST_STREAM:
                    self.resets += 1
                if kind != wire.DATA or not flags & wire.END_STREAM or self.silent:
                    continue
                answered += 1
                writer.write(ok_answer(encoder, stream))
                if answered == self.per_connection:
                    writer.write(wire.frame(wire.GOAWAY, 0, 0, stream.to_bytes(4, "big") + bytes(4)))
                    await writer.drain()
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def _shutdown(self) -> None:
        self.server.close()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(60)
        self.loop.close()


def level(port: int, clients: int, until: Any, timeout_s: float = 30.0, rate: float | None = None) -> dict:
    """The kinds counted by one level against ``port``, ended as soon as ``until(kinds)`` holds (a
    busy machine makes it last longer, never fail)."""
    stop = threading.Event()

    def progress(tally: Any) -> None:
        if until(tally.kinds):
            stop.set()

    plan = LevelPlan(Target(GRPC, "127.0.0.1", port, b"abc", method=METHOD), clients, rate, time.time(), 0.1,
                     600.0, timeout_s)
    report = asyncio.run(run_level(plan, stop, progress))
    return report.kinds


def counted(kind: str, enough: int = 3) -> Any:
    return lambda kinds: kinds.get(kind, 0) >= enough


@pytest.fixture
def scripted() -> object:
    made: list[ScriptedServer] = []

    def make(**options: object) -> ScriptedServer:
        made.append(ScriptedServer(**options))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_a_silent_server_gives_timeouts_and_the_calls_are_cancelled(scripted) -> None:
    server = scripted(silent=True)
    kinds = level(server.port, 2, counted("timeout"), timeout_s=0.1)
    assert set(kinds) == {"timeout"}
    wait_for(lambda: server.resets > 0, 60)  # each call given up on is cancelled (RST_STREAM), not left open


def test_a_server_closing_its_connections_mid_run_does_not_stop_the_level(scripted) -> None:
    server = scripted(per_connection=3)
    kinds = level(server.port, 4, lambda kinds: kinds.get("OK", 0) >= 20)
    assert set(kinds) <= {"OK", "connection reset"}
    assert server.connections > 4  # the clients opened new connections after each GOAWAY


def test_the_open_loop_sends_on_the_same_connections(scripted) -> None:
    server = scripted()
    kinds = level(server.port, 4, counted("OK", 10), rate=50.0)
    assert set(kinds) == {"OK"}, kinds
    assert server.connections <= 4
