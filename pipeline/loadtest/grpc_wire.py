"""The load tool's gRPC client: HTTP/2 spoken directly on an asyncio connection, as h2load does.

grpcio's Python client spends more CPU per call than the server it measures on a small machine, so
the load tool frames its gRPC requests itself. A :class:`GrpcConnection` sends the connection
preface and its SETTINGS (the largest receive windows, so the server never waits for us), then per
request one write: a HEADERS frame whose HPACK block is made once (fields never indexed, so only the
stream id changes) and a DATA frame with the length-prefixed serialized request and END_STREAM.
Answers are read frame by frame: response headers, DATA (counted for the receive window, not
parsed: no protobuf), trailers with ``grpc-status`` and ``grpc-message`` (HPACK decoded by the
``hpack`` library, each distinct block once while the server's dynamic table stays the same),
RST_STREAM, GOAWAY, PING (acknowledged), SETTINGS (acknowledged; the server's MAX_FRAME_SIZE,
MAX_CONCURRENT_STREAMS and INITIAL_WINDOW_SIZE obeyed) and WINDOW_UPDATE: a request larger than the
server's windows or frame size is sent in pieces as the windows open. Streams are multiplexed; what
the answers of one read cause (the next requests of a closed loop, acknowledgements) leaves in one
write. Each request's end is reported to a callback, as an answer (``OK``, ``gRPC NOT_FOUND``) or a
failure (``timeout``, ``connection reset``). Plaintext only (``h2c``): a ``--grpc`` target is host:port.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from pipeline.loadtest.clients import error_kind, no_delay
from pipeline.loadtest.results import OK

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY = 0x4, 0x8, 0x20
CANCEL = 0x8
MAX_WINDOW = 2**31 - 1
STREAM_MASK = 0x7FFFFFFF
READ_FRAME_SIZE = 1 << 20
"""The largest frame we accept (our SETTINGS_MAX_FRAME_SIZE)."""
DEFAULT_WINDOW, DEFAULT_FRAME_SIZE = 65535, 16384
HEAD = struct.Struct(">BHBBI")
"""A frame header: the length's high byte and low 16 bits, type, flags, stream id."""
SETTING = struct.Struct(">HI")
MAX_KNOWN_BLOCKS = 64
CODES = ("OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
         "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
         "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED")
HTTP_CODES = {400: "INTERNAL", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "UNIMPLEMENTED",
              429: "UNAVAILABLE", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "UNAVAILABLE"}
"""gRPC's mapping of an HTTP status without ``grpc-status`` to a code (else UNKNOWN)."""
RESET_CODES = {0x7: "UNAVAILABLE", 0x8: "CANCELLED", 0xB: "RESOURCE_EXHAUSTED", 0xC: "PERMISSION_DENIED"}
"""gRPC's mapping of a stream reset's HTTP/2 error code to a code (else INTERNAL)."""

Call = tuple[int, float, "asyncio.Future | None"]
"""One request: (client, started at perf_counter, the future to resolve or None in a closed loop)."""
Ended = Callable[["GrpcConnection", Call, bool, str, Any], None]
"""Told of each request's end: (connection, call, answered, kind, detail); ``answered`` False means
no answer (``kind`` is then ``timeout`` or a connection failure)."""


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return HEAD.pack(len(payload) >> 16, len(payload) & 0xFFFF, kind, flags, stream) + payload


OPENING = (PREFACE + frame(SETTINGS, 0, 0, SETTING.pack(0x2, 0) + SETTING.pack(0x4, MAX_WINDOW)
                           + SETTING.pack(0x5, READ_FRAME_SIZE))
           + frame(WINDOW_UPDATE, 0, 0, (MAX_WINDOW - DEFAULT_WINDOW).to_bytes(4, "big")))
"""What a connection sends first: the preface, our SETTINGS (no push, the largest stream window,
frames up to :data:`READ_FRAME_SIZE`) and the largest connection window."""


class ProtocolError(ConnectionResetError):
    """The server broke HTTP/2 (or is not an HTTP/2 server)."""


class GrpcConnection(asyncio.Protocol):
    """One HTTP/2 connection carrying many gRPC calls of the same request (``head``: the HPACK
    block, ``message``: the length-prefixed request). :meth:`start` sends one; ``ended`` is told how
    each ended. ``finished`` resolves when the connection is gone."""

    def __init__(self, loop: asyncio.AbstractEventLoop, head: bytes, message: bytes, timeout_s: float,
                 ended: Ended) -> None:
        import hpack

        self.loop, self.timeout_s, self.ended = loop, timeout_s, ended
        self.head_prefix = HEAD.pack(0, len(head), HEADERS, END_HEADERS, 0)[:5]
        self.head, self.message = head, message
        self.data_prefix = HEAD.pack(len(message) >> 16, len(message) & 0xFFFF, DATA, END_STREAM, 0)[:5]
        self.decoder, self.hpack_error = hpack.Decoder(), hpack.HPACKError
        self.known: dict[bytes, dict[bytes, bytes]] = {}
        self.transport: asyncio.Transport | None = None
        self.ready = loop.create_future()
        self.ready.add_done_callback(lambda done: done.cancelled() or done.exception())
        self.finished = loop.create_future()
        self.calls: dict[int, Call] = {}
        self.backlog: deque[Call] = deque()
        self.statuses: dict[int, bytes] = {}
        self.pending: deque[list] = deque()
        """Requests not yet wholly sent: [stream, what is left, the stream's send window]."""
        self.next_stream = 1
        self.send_window, self.stream_window = DEFAULT_WINDOW, DEFAULT_WINDOW
        self.max_frame, self.max_streams = DEFAULT_FRAME_SIZE, 2**31
        self.received = 0
        self.buffer = bytearray()
        self.need = 9
        self.block: list | None = None
        self.out: list[bytes] | None = None
        self.closed = self.draining = False
        self.watch: asyncio.TimerHandle | None = None

    @classmethod
    async def open(cls, loop: asyncio.AbstractEventLoop, host: str, port: int, head: bytes, message: bytes,
                   timeout_s: float, ended: Ended) -> GrpcConnection:
        """A connection whose server has sent its SETTINGS; ``OSError`` if there is none."""
        _, protocol = await loop.create_connection(lambda: cls(loop, head, message, timeout_s, ended),
                                                   host, port)
        try:
            await protocol.ready
        except BaseException:
            protocol.close()
            raise
        return protocol

    @property
    def usable(self) -> bool:
        return not (self.closed or self.draining)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport)
        transport.write(OPENING)  # type: ignore[attr-defined]
        self.watch = self.loop.call_later(self.timeout_s / 4, self._check_deadlines)

    def start(self, call: Call) -> bool:
        """Send one request (or queue it while the server's stream limit is reached); False when
        this connection takes no more (closed, or the server is closing it)."""
        if not self.usable:
            return False
        if len(self.calls) >= self.max_streams:
            self.backlog.append(call)
            return True
        stream = self.next_stream
        if stream > STREAM_MASK:
            self._drain("no stream ids left on the connection")
            return False
        self.next_stream = stream + 2
        self.calls[stream] = call
        sid = stream.to_bytes(4, "big")
        size = len(self.message)
        if not self.pending and size <= min(self.send_window, self.stream_window, self.max_frame):
            self.send_window -= size
            self._send(self.head_prefix + sid + self.head + self.data_prefix + sid + self.message)
        else:
            self._send(self.head_prefix + sid + self.head)
            self.pending.append([stream, memoryview(self.message), self.stream_window])
            self._flush()
        return True

    def _send(self, data: bytes) -> None:
        if self.out is not None:  # reading: everything the read causes goes in one write
            self.out.append(data)
        elif self.transport is not None and not self.closed:
            self.transport.write(data)

    def _flush(self) -> None:
        """Send what the windows allow of the requests not yet wholly sent, in order."""
        while self.pending:
            entry = self.pending[0]
            stream, left, window = entry
            size = min(len(left), window, self.send_window, self.max_frame)
            if size <= 0:
                return
            last = size == len(left)
            self._send(frame(DATA, END_STREAM if last else 0, stream, bytes(left[:size])))
            self.send_window -= size
            if last:
                self.pending.popleft()
            else:
                entry[1], entry[2] = left[size:], window - size

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            self.buffer += data
            if len(self.buffer) < self.need:
                return
            data = bytes(self.buffer)
            self.buffer.clear()
        self.out = []
        try:
            self._read(data)
        except (ProtocolError, self.hpack_error, ValueError, IndexError) as error:
            self._lose(error if isinstance(error, ProtocolError) else ProtocolError(f"bad HTTP/2: {error}"))
        finally:
            out, self.out = self.out, None
            if out and self.transport is not None and not self.closed:
                self.transport.write(b"".join(out))

    def _read(self, data: bytes) -> None:
        """Handle every whole frame in ``data``; keep the rest for the next read."""
        pos, size = 0, len(data)
        while size - pos >= 9:
            high, low, kind, flags, stream = HEAD.unpack_from(data, pos)
            length = high << 16 | low
            end = pos + 9 + length
            if length > READ_FRAME_SIZE or (not self.ready.done() and kind != SETTINGS):
                raise ProtocolError("the server does not speak HTTP/2 (is this a gRPC port?)")
            if end > size:
                self.need = 9 + length
                break
            stream &= STREAM_MASK
            if kind == DATA:
                self.received += length
                if self.received > MAX_WINDOW // 2:
                    self._send(frame(WINDOW_UPDATE, 0, 0, self.received.to_bytes(4, "big")))
                    self.received = 0
                if flags & END_STREAM:
                    self._end(stream, True, "gRPC INTERNAL", "the call ended without a grpc-status")
            else:
                self._control(kind, flags, stream, data[pos + 9:end])
            pos = end
        else:
            self.need = 9
        if pos < size:
            self.buffer += data[pos:]

    def _control(self, kind: int, flags: int, stream: int, payload: bytes) -> None:
        if kind == HEADERS:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if flags & PRIORITY:
                payload = payload[5:]
            if flags & END_HEADERS:
                self._headers(stream, payload, flags & END_STREAM)
            else:
                self.block = [stream, flags & END_STREAM, bytearray(payload)]
        elif kind == CONTINUATION:
            if self.block is None or self.block[0] != stream:
                raise ProtocolError("CONTINUATION without HEADERS")
            self.block[2] += payload
            if flags & END_HEADERS:
                stream, end, block = self.block
                self.block = None
                self._headers(stream, bytes(block), end)
        elif kind == RST_STREAM:
            code = int.from_bytes(payload[:4], "big")
            self._end(stream, True, f"gRPC {RESET_CODES.get(code, 'INTERNAL')}",
                      f"the server reset the stream (HTTP/2 error code {code})")
        elif kind == SETTINGS and not flags & ACK:
            self._settings(payload)
        elif kind == PING and not flags & ACK:
            self._send(frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            self._goaway(payload)
        elif kind == WINDOW_UPDATE:
            self._window(stream, int.from_bytes(payload[:4], "big") & STREAM_MASK)

    def _decode(self, block: bytes) -> dict[bytes, bytes]:
        """A header block's fields; a block that leaves the dynamic table as it was is decoded once
        (until the table changes)."""
        found = self.known.get(block)
        if found is not None:
            return found
        table = self.decoder.header_table
        entries = table.dynamic_entries
        count, first, limit = len(entries), entries[0] if entries else None, table.maxsize
        fields = dict(self.decoder.decode(block, raw=True))
        if len(entries) != count or (entries[0] if entries else None) is not first or table.maxsize != limit:
            self.known.clear()
        elif len(self.known) < MAX_KNOWN_BLOCKS:
            self.known[block] = fields
        return fields

    def _headers(self, stream: int, block: bytes, end_stream: int) -> None:
        fields = self._decode(block)  # even for a call given up on: any block may change the table
        if stream not in self.calls:
            return
        status = fields.get(b":status") or self.statuses.get(stream)
        if not end_stream:  # the response's headers: the status is kept for a trailers-less end
            if status is not None and status != b"200":
                self.statuses[stream] = status
            return
        code, message = fields.get(b"grpc-status"), fields.get(b"grpc-message", b"")
        message = unquote(message.decode("utf-8", "replace")) if message else ""
        if code is None:
            http = int(status) if status and status.isdigit() else 0
            name = HTTP_CODES.get(http, "UNKNOWN") if http != 200 else "UNKNOWN"
            message = message or (f"HTTP status {http}" if http != 200 else "no grpc-status in the answer")
        else:
            number = int(code)
            name = CODES[number] if 0 <= number < len(CODES) else "UNKNOWN"
        if name == "OK":
            self._end(stream, True, OK, None)
        elif name == "DEADLINE_EXCEEDED":
            self._end(stream, False, "timeout", message or "Deadline Exceeded")
        else:
            self._end(stream, True, f"gRPC {name}", message or name)

    def _settings(self, payload: bytes) -> None:
        for offset in range(0, len(payload) - 5, 6):
            key, value = SETTING.unpack_from(payload, offset)
            if key == 0x3:
                self.max_streams = value
            elif key == 0x4:
                for entry in self.pending:
                    entry[2] += value - self.stream_window
                self.stream_window = value
            elif key == 0x5:
                self.max_frame = value
        self._send(frame(SETTINGS, ACK, 0))
        if not self.ready.done():
            self.ready.set_result(None)
        self._flush()
        self._start_backlog()

    def _window(self, stream: int, increment: int) -> None:
        if stream == 0:
            self.send_window += increment
        else:
            for entry in self.pending:
                if entry[0] == stream:
                    entry[2] += increment
        self._flush()

    def _goaway(self, payload: bytes) -> None:
        last = int.from_bytes(payload[:4], "big") & STREAM_MASK
        code = int.from_bytes(payload[4:8], "big")
        why = payload[8:].decode("utf-8", "replace")
        reason = f"the server is closing the connection (GOAWAY, HTTP/2 error code {code})"
        reason += f": {why}" if why else ""
        self._drain(reason)
        for stream in [s for s in self.calls if s > last]:
            self._end(stream, False, "connection reset", reason)
        if not self.calls:
            self.close()

    def _end(self, stream: int, answered: bool, kind: str, detail: Any) -> None:
        call = self.calls.pop(stream, None)
        if call is None:
            return
        if self.statuses:
            self.statuses.pop(stream, None)
        if self.pending:
            self.pending = deque(entry for entry in self.pending if entry[0] != stream)
        self.ended(self, call, answered, kind, detail)
        if self.backlog:
            self._start_backlog()
        if self.draining and not self.calls:
            self.close()

    def _start_backlog(self) -> None:
        while self.backlog and self.usable and len(self.calls) < self.max_streams:
            self.start(self.backlog.popleft())

    def _fail_backlog(self, reason: Any, kind: str = "connection reset") -> None:
        while self.backlog:
            self.ended(self, self.backlog.popleft(), False, kind, reason)

    def _check_deadlines(self) -> None:
        """Give up (RST_STREAM CANCEL) on calls older than the timeout; checked every quarter of it."""
        if self.closed:
            return
        now = time.perf_counter()
        late = [stream for stream, call in self.calls.items() if now - call[1] > self.timeout_s]
        for stream in late:
            self._send(frame(RST_STREAM, 0, stream, CANCEL.to_bytes(4, "big")))
            self._end(stream, False, "timeout", "Deadline Exceeded")
        self.watch = self.loop.call_later(self.timeout_s / 4, self._check_deadlines)

    def _drain(self, reason: str) -> None:
        """Take no more calls: those in flight finish, those waiting for a stream end now."""
        self.draining = True
        self._fail_backlog(reason)
        if not self.calls:
            self.close()

    def _lose(self, error: BaseException) -> None:
        """The connection failed: every call on it (and its opening) ends with ``error``'s kind."""
        if not self.ready.done():
            self.ready.set_exception(error)
        if self.closed and not self.calls and not self.backlog:
            return
        self.closed = True
        kind = error_kind(error)
        calls, self.calls = list(self.calls.values()), {}
        for call in calls:
            self.ended(self, call, False, kind, error)
        self._fail_backlog(error, kind)
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(exc or ConnectionResetError("the server closed the connection"))
        if not self.finished.done():
            self.finished.set_result(None)

    def close(self) -> None:
        """Close the connection; calls still in flight are abandoned without being reported."""
        self.closed = True
        self.calls.clear()
        self.backlog.clear()
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        if self.transport is not None:
            self.transport.close()

