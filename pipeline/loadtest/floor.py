"""Servers that do nothing, to measure what the load generator itself can reach (its ceiling).

- REST: the bench's raw floor (`bench/raw_asgi.py` serves this very app): a raw ASGI app on uvicorn
  with httptools and uvloop that reads the request and answers one constant JSON prediction.
- gRPC: an asyncio protocol on uvloop speaking HTTP/2 itself (frames as in `grpc_wire`) that answers
  every call, whatever its method, with prebuilt bytes: status 200, an empty message (valid for any
  response type) and ``grpc-status: 0``; no protos, no TensorFlow, no grpcio. A grpc.aio server
  costs more CPU per call than the load tool's own client, so its limit, not the generator's, was
  measured; this one spends a fraction of the client's CPU per call, and any gRPC client (grpcio's
  too) gets a correct answer from it.

A level that reaches 80% of the generator's ceiling at the same concurrency measures the generator
as much as the server. :class:`Floor` starts one in a child process on a free loopback port::

    python -m pipeline.loadtest.floor --transport REST --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from typing import Any

from pipeline.loadtest import grpc_wire as wire
from pipeline.loadtest.clients import no_delay
from pipeline.settings import PROJECT_ROOT

BODY = b'{"predictions":[[3.0]]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
START_TIMEOUT_S = 60.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the whole request body, then answer ``BODY`` (any path, any method)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def serve_rest(port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", loop="uvloop", access_log=False,
                log_level="warning", lifespan="off")


def _literal(name: bytes, value: bytes) -> bytes:
    """An HPACK field as a literal without indexing and a new name (no Huffman): decodable by any
    peer whatever its dynamic table holds, and leaving that table as it is."""
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


RESPONSE_HEAD = b"\x88" + _literal(b"content-type", b"application/grpc")
"""``:status 200`` (static table entry 8) and ``content-type: application/grpc``."""
RESPONSE_TRAILERS = _literal(b"grpc-status", b"0")
EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"
"""A gRPC message: not compressed, zero bytes long (an empty protobuf of any type)."""
RESPONSE_PARTS = (
    wire.HEAD.pack(0, len(RESPONSE_HEAD), wire.HEADERS, wire.END_HEADERS, 0)[:5],
    RESPONSE_HEAD + wire.HEAD.pack(0, len(EMPTY_MESSAGE), wire.DATA, 0, 0)[:5],
    EMPTY_MESSAGE + wire.HEAD.pack(0, len(RESPONSE_TRAILERS), wire.HEADERS,
                                   wire.END_HEADERS | wire.END_STREAM, 0)[:5],
    RESPONSE_TRAILERS)
"""A whole answer cut where its three frames name their stream: ``stream_id.join(RESPONSE_PARTS)``."""
SERVER_OPENING = (wire.frame(wire.SETTINGS, 0, 0, wire.SETTING.pack(0x4, wire.MAX_WINDOW)
                             + wire.SETTING.pack(0x5, wire.READ_FRAME_SIZE))
                  + wire.frame(wire.WINDOW_UPDATE, 0, 0,
                               (wire.MAX_WINDOW - wire.DEFAULT_WINDOW).to_bytes(4, "big")))
"""The server's SETTINGS (the largest stream window, frames up to 1 MiB) and the largest connection
window: a client never waits for us to let it send."""
SETTINGS_ACK = wire.frame(wire.SETTINGS, wire.ACK, 0)
PROTOCOL_ERROR, FRAME_SIZE_ERROR = 0x1, 0x6


class EmptyGrpcServer(asyncio.Protocol):
    """One HTTP/2 connection answering every gRPC call, whatever its method, with an empty message
    and status OK as soon as its request has ended (the request's headers and body are not read).

    PING and SETTINGS are acknowledged; the connection window is reopened for the DATA received
    (streams get the largest window in the SETTINGS, enough for any request); WINDOW_UPDATE and
    PRIORITY are ignored (an answer is 5 bytes of DATA: the client's windows hardly move); a stream
    reset before its request ended is never answered; GOAWAY closes the connection. What one read
    causes leaves in one write. A client breaking HTTP/2 gets GOAWAY and the connection closes.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.need = len(wire.PREFACE)
        self.opened = False
        self.skip = 0
        """Bytes still to come of a DATA frame's payload (discarded)."""
        self.skip_ends = 0
        """The stream to answer once those bytes are in (its request ends with that frame), or 0."""
        self.block_stream = 0
        self.block_ends = 0
        """A header block awaiting CONTINUATION: its stream and whether the request ends with it."""
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        no_delay(transport)
        transport.write(SERVER_OPENING)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        out: list[bytes] = []
        pos, size = 0, len(data)
        if self.skip:
            pos = min(self.skip, size)
            self.skip -= pos
            if not self.skip and self.skip_ends:
                out.append(self.skip_ends.to_bytes(4, "big").join(RESPONSE_PARTS))
                self.skip_ends = 0
        if self.buffer or not self.opened:
            self.buffer += data[pos:] if pos else data
            if len(self.buffer) < self.need:
                return self._write(out)
            data, pos = bytes(self.buffer), 0
            size = len(data)
            self.buffer.clear()
            if not self.opened:
                if not data.startswith(wire.PREFACE):
                    return self._fail(PROTOCOL_ERROR, "not an HTTP/2 connection preface", out)
                self.opened, pos, self.need = True, len(wire.PREFACE), 9
        close = False
        while size - pos >= 9:
            high, low, kind, flags, stream = wire.HEAD.unpack_from(data, pos)
            length = high << 16 | low
            if length > wire.READ_FRAME_SIZE:
                return self._fail(FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE", out)
            start = pos + 9
            end = start + length
            stream &= wire.STREAM_MASK
            if kind == wire.DATA:
                self.received += length
                if end > size:  # the rest of the payload comes in later reads
                    self.skip, self.skip_ends = end - size, stream if flags & wire.END_STREAM else 0
                    pos = size
                    break
                if flags & wire.END_STREAM:
                    out.append(stream.to_bytes(4, "big").join(RESPONSE_PARTS))
            elif end > size:
                self.need = end - pos
                break
            elif kind == wire.HEADERS:
                if not flags & wire.END_HEADERS:
                    self.block_stream, self.block_ends = stream, flags & wire.END_STREAM
                elif flags & wire.END_STREAM:
                    out.append(stream.to_bytes(4, "big").join(RESPONSE_PARTS))
            elif kind == wire.CONTINUATION:
                if stream != self.block_stream or not stream:
                    return self._fail(PROTOCOL_ERROR, "CONTINUATION without HEADERS", out)
                if flags & wire.END_HEADERS:
                    if self.block_ends:
                        out.append(stream.to_bytes(4, "big").join(RESPONSE_PARTS))
                    self.block_stream = 0
            elif kind == wire.SETTINGS:
                if not flags & wire.ACK:
                    out.append(SETTINGS_ACK)
            elif kind == wire.PING:
                if not flags & wire.ACK:
                    out.append(wire.frame(wire.PING, wire.ACK, 0, data[start:end]))
            elif kind == wire.RST_STREAM:
                if stream == self.block_stream:
                    self.block_stream = 0
            elif kind == wire.GOAWAY:
                close = True
            pos = end
        else:
            self.need = 9
        if pos < size:
            self.buffer += data[pos:]
        if self.received > wire.MAX_WINDOW // 2:
            out.append(wire.frame(wire.WINDOW_UPDATE, 0, 0, self.received.to_bytes(4, "big")))
            self.received = 0
        self._write(out)
        if close and self.transport is not None:
            self.transport.close()

    def _write(self, out: list[bytes]) -> None:
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))

    def _fail(self, code: int, why: str, out: list[bytes]) -> None:
        """Say GOAWAY with ``code`` and ``why`` (after what this read already caused) and close."""
        out.append(wire.frame(wire.GOAWAY, 0, 0, (0).to_bytes(4, "big") + code.to_bytes(4, "big")
                              + why.encode()))
        self._write(out)
        if self.transport is not None:
            self.transport.close()


def serve_grpc(port: int) -> None:
    """Serve :class:`EmptyGrpcServer` on 127.0.0.1:``port`` with uvloop until killed."""
    import uvloop

    async def run() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(EmptyGrpcServer, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(run())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Floor:
    """A do-nothing server of one transport in a child process (a context manager that stops it)."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.port = free_port()
        command = [sys.executable, "-m", "pipeline.loadtest.floor", "--transport", transport,
                   "--port", str(self.port)]
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                error = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                raise OSError(f"the {self.transport} floor server exited: {error.strip()[-300:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise OSError(f"the {self.transport} floor server did not listen within "
                                  f"{START_TIMEOUT_S:g} s") from None
                time.sleep(0.05)

    def __enter__(self) -> Floor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stderr:
            self.process.stderr.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.loadtest.floor", description=__doc__)
    parser.add_argument("--transport", choices=("REST", "gRPC"), default="REST")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    (serve_grpc if args.transport == "gRPC" else serve_rest)(args.port)


if __name__ == "__main__":
    main()
