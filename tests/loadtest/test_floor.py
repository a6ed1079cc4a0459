"""The do-nothing gRPC server the load tool measures its own ceiling against: any gRPC client
(grpcio's, the load tool's own) gets an empty message and status OK for any method, with requests of
any size (one larger than the default windows and frame size too), several calls at once per
connection."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import hpack
import pytest

from pipeline.loadtest import floor
from pipeline.loadtest import grpc_wire as wire
from pipeline.loadtest.clients import GRPC, LevelPlan, Target
from pipeline.loadtest.results import OK
from pipeline.loadtest.worker import run_level
from tests.support.http2 import frames

METHOD = "/tensorflow.serving.PredictionService/Predict"
LARGE = 200 * 1024
"""Bytes of a request larger than HTTP/2's default windows (64 KiB) and frame size (16 KiB)."""


@pytest.fixture(scope="module")
def grpc_floor() -> Iterator[floor.Floor]:
    with floor.Floor("gRPC") as server:
        yield server


def test_a_grpcio_client_gets_an_empty_ok_answer_for_any_method(grpc_floor: floor.Floor) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_floor.port}") as channel:
        for method in (METHOD, "/any.Service/Any"):
            answer, call = channel.unary_unary(method).with_call(b"\x08\x01", timeout=60)
            assert answer == b""
            assert call.code() == grpc.StatusCode.OK


def test_a_grpcio_client_gets_answers_to_large_and_concurrent_requests(grpc_floor: floor.Floor) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_floor.port}") as channel:
        predict = channel.unary_unary(METHOD)
        futures = [predict.future(bytes([n]) * (LARGE + n), timeout=60) for n in range(8)]
        assert [future.result() for future in futures] == [b""] * 8


def level(port: int, body: bytes, clients: int, until: Any) -> dict[str, int]:
    """The kinds counted by one level of the load tool against ``port``, ended as soon as
    ``until(kinds)`` holds (a busy machine makes it last longer, never fail)."""
    stop = threading.Event()

    def progress(tally: Any) -> None:
        if until(tally.kinds):
            stop.set()

    plan = LevelPlan(Target(GRPC, "127.0.0.1", port, body, method=METHOD), clients, None, time.time(), 0.1,
                     600.0, 60.0)
    return asyncio.run(run_level(plan, stop, progress)).kinds


def test_the_load_tools_client_gets_only_ok(grpc_floor: floor.Floor) -> None:
    kinds = level(grpc_floor.port, b"\x08\x01", 8, lambda kinds: kinds.get(OK, 0) >= 200)
    assert set(kinds) == {OK}


def test_the_load_tools_client_gets_requests_over_64_kib_answered(grpc_floor: floor.Floor) -> None:
    kinds = level(grpc_floor.port, b"x" * LARGE, 4, lambda kinds: kinds.get(OK, 0) >= 20)
    assert set(kinds) == {OK}


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def opened() -> tuple[floor.EmptyGrpcServer, Transport]:
    server, transport = floor.EmptyGrpcServer(), Transport()
    server.connection_made(transport)
    transport.written.clear()
    return server, transport


def request_head(stream: int, flags: int = wire.END_HEADERS) -> bytes:
    fields = [(":method", "POST"), (":path", METHOD), ("content-type", "application/grpc")]
    block = hpack.Encoder().encode(fields)
    return wire.frame(wire.HEADERS, flags, stream, block)


def test_an_answer_is_status_200_an_empty_message_and_grpc_status_0() -> None:
    server, transport = opened()
    message = wire.frame(wire.DATA, wire.END_STREAM, 1, b"\0" * 5)
    server.data_received(wire.PREFACE + request_head(1) + message)
    assert len(transport.written) == 1  # one write per read
    decoder = hpack.Decoder()
    (k1, f1, s1, head), (k2, f2, s2, data), (k3, f3, s3, trailers) = frames(transport.written[0])
    assert (k1, f1, s1, decoder.decode(head)) == (wire.HEADERS, wire.END_HEADERS, 1,
                                                  [(":status", "200"), ("content-type", "application/grpc")])
    assert (k2, f2, s2, data) == (wire.DATA, 0, 1, b"\0\0\0\0\0")
    assert (k3, f3, s3, decoder.decode(trailers)) == (wire.HEADERS, wire.END_HEADERS | wire.END_STREAM, 1,
                                                      [("grpc-status", "0")])
    assert decoder.header_table.dynamic_entries == type(decoder.header_table.dynamic_entries)()


def test_requests_split_anywhere_across_reads_are_each_answered_once() -> None:
    body = b"\0\0\x01\0\0" + b"y" * 65536
    stream = (wire.PREFACE + wire.frame(wire.SETTINGS, 0, 0, b"") + wire.frame(wire.PING, 0, 0, b"12345678")
              + request_head(1, 0) + wire.frame(wire.CONTINUATION, wire.END_HEADERS, 1, b"")
              + wire.frame(wire.DATA, 0, 1, body[:40000])
              + wire.frame(wire.DATA, wire.END_STREAM, 1, body[40000:])
              + request_head(3, wire.END_HEADERS | wire.END_STREAM)
              + request_head(5) + wire.frame(wire.RST_STREAM, 0, 5, b"\0\0\0\x08")
              + request_head(7) + wire.frame(wire.DATA, wire.END_STREAM | wire.PADDED, 7, b"\x02ab\0\0"))
    for piece in (1, 7, 9, 1000, len(stream)):
        server, transport = opened()
        for start in range(0, len(stream), piece):
            server.data_received(stream[start:start + piece])
        found = frames(b"".join(transport.written))
        assert (wire.SETTINGS, wire.ACK, 0, b"") in found
        assert (wire.PING, wire.ACK, 0, b"12345678") in found
        ends = [s for kind, flags, s, _ in found if kind == wire.HEADERS and flags & wire.END_STREAM]
        assert ends == [1, 3, 7]
        assert not transport.closed


def test_goaway_closes_and_a_client_not_speaking_http2_is_told() -> None:
    server, transport = opened()
    server.data_received(wire.PREFACE + wire.frame(wire.GOAWAY, 0, 0, b"\0" * 8))
    assert transport.closed
    server, transport = opened()
    server.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert transport.closed
    assert frames(transport.written[-1])[0][0] == wire.GOAWAY
