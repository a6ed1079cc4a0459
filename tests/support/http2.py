"""Reading HTTP/2 frames in tests of the load tool's own HTTP/2 client and floor server."""

from __future__ import annotations

from pipeline.loadtest import grpc_wire as wire


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream, payload) of every frame in ``data`` (a client's preface skipped)."""
    data = data.removeprefix(wire.PREFACE)
    found, pos = [], 0
    while pos < len(data):
        high, low, kind, flags, stream = wire.HEAD.unpack_from(data, pos)
        end = pos + 9 + (high << 16 | low)
        found.append((kind, flags, stream, data[pos + 9:end]))
        pos = end
    return found
