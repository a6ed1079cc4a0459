"""The one place the REST front end relies on uvicorn internals: a response leaves in one write.

uvicorn writes a response's head and its body separately: two syscalls and two TCP segments per
answer, a quarter of the event loop's time in profiles of small predicts. `http_protocol()` returns
a subclass of uvicorn's private `httptools_impl.HttpToolsProtocol` whose transport buffers the
writes made in one event-loop turn and sends them with one `send()`.

What is relied on (checked by `tests/server/test_uvicorn_protocol.py`, so an upgrade that changes it
fails a test instead of silently losing the speedup): the class exists, takes
`(config, server_state, app_state)`, has a `loop` attribute, and `connection_made(transport)`
keeps the transport it is given as `self.transport` and writes only through it. If the import
fails, the server falls back to uvicorn's public `"httptools"` protocol and logs it at start-up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)

FALLBACK = "httptools"
"""uvicorn's public name for the same protocol without coalescing."""


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
    """The HttpToolsProtocol subclass with `CoalescingTransport`; ImportError if uvicorn moved it."""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CoalescingHttpToolsProtocol(HttpToolsProtocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

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
