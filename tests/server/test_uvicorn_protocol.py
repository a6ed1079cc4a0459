"""Contract test of the one uvicorn internal the REST front end relies on (rest/uvicorn_protocol.py).

If a uvicorn upgrade moves `HttpToolsProtocol`, changes its constructor, or stops writing through
the transport `connection_made` was given, these fail, instead of the server silently going back
to two sends per response. Runs uvicorn's real protocol on a fake transport, in-process.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import uvicorn
from uvicorn.server import ServerState

from pipeline.serving.rest.uvicorn_protocol import (
    CoalescingTransport,
    coalescing_protocol_class,
    http_protocol,
)


class FakeTransport(asyncio.Transport):
    """Records every write; enough of a socket transport for uvicorn's protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 8501), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol) -> None:
        pass


async def app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


def serve_one_request(protocol_class: type) -> FakeTransport:
    async def scenario() -> FakeTransport:
        config = uvicorn.Config(app, http=protocol_class, loop="asyncio", lifespan="off", log_level="warning")
        config.load()
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={},
                                  _loop=asyncio.get_running_loop())
        transport = FakeTransport()
        protocol.connection_made(transport)
        protocol.data_received(b"GET /v1/models/m HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        for _ in range(1000):  # loop turns, not time: until the answer has been written
            if transport.writes:
                break
            await asyncio.sleep(0)
        for _ in range(10):  # a few more turns: a second write would show up now
            await asyncio.sleep(0)
        protocol.connection_lost(None)
        return transport

    return asyncio.run(scenario())


def test_the_private_protocol_class_still_exists_and_wraps_the_transport() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    protocol_class = coalescing_protocol_class()
    assert issubclass(protocol_class, HttpToolsProtocol)
    assert isinstance(CoalescingTransport(FakeTransport(), asyncio.new_event_loop()), CoalescingTransport)


def test_a_response_leaves_in_exactly_one_write() -> None:
    transport = serve_one_request(coalescing_protocol_class())
    assert len(transport.writes) == 1, transport.writes
    assert transport.writes[0].startswith(b"HTTP/1.1 200 OK") and transport.writes[0].endswith(b"\r\n\r\n{}")


def test_uvicorns_own_protocol_writes_twice_which_is_what_the_subclass_saves() -> None:
    """The speedup is real with this uvicorn: the public protocol sends head and body separately."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert len(serve_one_request(HttpToolsProtocol).writes) == 2


def test_start_up_logs_which_path_is_active(caplog: pytest.LogCaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with caplog.at_level(logging.INFO, logger="pipeline.serving.rest.uvicorn_protocol"):
        assert http_protocol() is not None and http_protocol() != "httptools"
    assert "coalesced writes" in caplog.text

    def gone() -> type:
        raise ImportError("no module named httptools_impl")

    caplog.clear()
    monkeypatch.setattr("pipeline.serving.rest.uvicorn_protocol.coalescing_protocol_class", gone)
    with caplog.at_level(logging.INFO, logger="pipeline.serving.rest.uvicorn_protocol"):
        assert http_protocol() == "httptools"
    assert any(r.levelname == "WARNING" and "two sends" in r.getMessage() for r in caplog.records)
