"""The one place the REST front end relies on uvicorn internals: a response leaves in one write,
and an HTTP/2 cleartext upgrade offer is ignored, and a lost connection cancels its waiting request.

uvicorn writes a response's head and its body separately: two syscalls and two TCP segments per
answer, a quarter of the event loop's time in profiles of small predicts. `http_protocol()` returns
a subclass of uvicorn's private `httptools_impl.HttpToolsProtocol` whose transport buffers the
writes made in one event-loop turn and sends them with one `send()`.

What is relied on (checked by `tests/server/test_uvicorn_protocol.py`, so an upgrade that changes it
fails a test instead of silently losing the speedup): the class exists, takes
`(config, server_state, app_state)`, has a `loop` attribute, and `connection_made(transport)`
keeps the transport it is given as `self.transport` and writes only through it. If the import
fails, the server falls back to uvicorn's public `"httptools"` protocol and logs it at start-up.

h2c: Java's default `HttpClient` offers HTTP/2 on every plain request (`Connection: Upgrade,
HTTP2-Settings`, `Upgrade: h2c`). TF Serving ignores the offer and answers over HTTP/1.1; httptools
(llhttp) instead treats everything after the headers as the new protocol, so the body is lost and
the next bytes are a 400 "Invalid HTTP request received.". The protocol here drops an `Upgrade: h2c`
header line before the parser sees it (`without_h2c_upgrade`), so such a request is plain HTTP/1.1.
WebSocket upgrades are not touched.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

log = logging.getLogger(__name__)

ON_DISCONNECT = "pipeline.on_disconnect"
"""Scope key: a callable the app may set while a request waits for its answer; the protocol calls it
once if the connection is lost before the response completed (with the public fallback protocol
a lost client is noticed only when its answer is written)."""

FALLBACK = "httptools"
"""uvicorn's public name for the same protocol without coalescing."""


_H2C_HEADER = re.compile(rb"\r\nupgrade:[ \t]*h2c[ \t]*(?=\r\n)", re.IGNORECASE)
# Every beginning of such a line, so a chunk that ends inside one can keep it back.
_H2C_START = re.compile(
    rb"\r(?:\n(?:u(?:p(?:g(?:r(?:a(?:d(?:e(?::[ \t]*(?:h(?:2(?:c[ \t]*(?:\r\n?)?)?)?)?)?)?)?)?)?)?)?)?)?",
    re.IGNORECASE)
_H2C_TAIL_MAX = 32


def without_h2c_upgrade(data: bytes, held: bytes, in_head: bool, before: bytes = b"") -> tuple[bytes, bytes]:
    """(bytes to parse, bytes to keep for the next chunk): `held + data` without `Upgrade: h2c`
    header lines.

    A header line can be split across TCP segments: while the request head is still arriving
    (`in_head` and no blank line yet, counting the last bytes passed on, `before`), a chunk that
    ends in what may begin such a line (a CR, a CR LF, `\r\nUpgr`...) keeps that tail back; more
    head bytes must follow, so this never stalls.
    JSON bodies cannot hold a raw CR LF, so a body never matches."""
    if held:
        data = held + data
    if b"2c" in data or b"2C" in data:  # any spelling of h2c (the line's match ignores case)
        data = _H2C_HEADER.sub(b"", data)
    if in_head and b"\r\n\r\n" not in before[-3:] + data:
        tail = data.find(b"\r", max(0, len(data) - _H2C_TAIL_MAX))
        while tail >= 0:
            if _H2C_START.fullmatch(data, tail):
                return data[:tail], data[tail:]
            tail = data.find(b"\r", tail + 1)
    return data, b""


class CoalescingTransport:
    """A transport whose writes made in one event-loop turn leave in one send() call.

    Pending bytes go out at the end of the turn (`call_soon`), and before `close`. Everything else
    is the wrapped transport's.
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


def coalescing_protocol_class() -> type:
    """The HttpToolsProtocol subclass with `CoalescingTransport` that ignores h2c upgrade offers;
    ImportError if uvicorn moved it."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        _held = b""
        _in_head = True  # the next bytes belong to a request head
        _before = b""  # the last bytes handed to the parser

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

        def data_received(self, data: bytes) -> None:
            data, self._held = without_h2c_upgrade(data, self._held, self._in_head, self._before)
            if data:
                self._before = data[-3:]
                super().data_received(data)

        def on_headers_complete(self) -> None:
            self._in_head = False
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True
            super().on_message_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            cycle = self.cycle
            waiting = cycle is not None and not cycle.response_complete
            gone = cycle.scope.get(ON_DISCONNECT) if waiting else None
            super().connection_lost(exc)
            if gone is not None:
                gone()  # the request is cancelled: its admission slot is free now

    return CoalescingHttpToolsProtocol


def http_protocol() -> type | str:
    """What to pass as `uvicorn.Config(http=...)`: the coalescing protocol, or uvicorn's public
    `"httptools"` if the private class is gone. Logs which path is active."""
    try:
        protocol = coalescing_protocol_class()
    except (ImportError, AttributeError) as error:
        log.warning("uvicorn's HttpToolsProtocol is not importable (%s): responses are written in two "
                    "sends (public 'httptools' protocol)", error)
        return FALLBACK
    log.info("HTTP protocol: uvicorn httptools with coalesced writes (one send per response)")
    return protocol
