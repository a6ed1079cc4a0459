"""Low-level probes for the reliability tests: raw HTTP over a socket, process memory, listening
sockets, and an inotify watch that tells whether any process opened or listed a directory.

Raw HTTP because `requests` and `http.client` refuse (or repair) the bytes the hostile tests need to
send: odd methods, unencoded paths, bodies sent in slow pieces, bodies shorter than declared.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def build_request(method: str, target: str | bytes, body: bytes = b"",
                  headers: dict[str, str] | None = None, content_length: int | None = None) -> bytes:
    """An HTTP/1.1 request with `Connection: close`; `content_length` may lie about the body."""
    target_bytes = target if isinstance(target, bytes) else target.encode("latin-1")
    lines = [method.encode("latin-1") + b" " + target_bytes + b" HTTP/1.1", b"Host: 127.0.0.1",
             b"Connection: close"]
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}".encode("latin-1"))
    if body or content_length is not None or method in ("POST", "PUT", "PATCH"):
        length = len(body) if content_length is None else content_length
        lines.append(b"Content-Length: " + str(length).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _read_response(sock: socket.socket, deadline: float) -> RawResponse:
    data = b""
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            if not data:
                raise
            break
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head:
        raise ConnectionError("the server closed the connection without an answer")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = body[: int(headers["content-length"])]
    return RawResponse(int(status_line.split()[1]), headers, body)


def raw_request(port: int, method: str, target: str | bytes, body: bytes = b"",
                headers: dict[str, str] | None = None, pieces: int = 1, pause_s: float = 0.0,
                timeout_s: float = 30.0) -> RawResponse:
    """Send one request over a fresh connection and read the whole answer. With `pieces` > 1 the body
    is sent in that many parts with `pause_s` between them (a slow client)."""
    deadline = time.monotonic() + timeout_s
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        try:
            sock.sendall(build_request(method, target, body, headers))
            step = max(1, -(-len(body) // max(1, pieces)))
            for offset in range(0, len(body), step):
                if offset:
                    time.sleep(pause_s)
                sock.sendall(body[offset:offset + step])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early (e.g. 413) and closed: read that answer
        return _read_response(sock, deadline)


def truncated_request(port: int, target: str, body: bytes, declared: int, pause_s: float = 0.0) -> None:
    """Declare `declared` bytes of body, send only `body`, then close the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(build_request("POST", target, b"", {"Content-Type": "application/json"}, declared))
        sock.sendall(body)
        if pause_s:
            time.sleep(pause_s)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def listening_addresses(port: int) -> list[str]:
    """Local addresses of every TCP socket listening on `port` (from /proc/net/tcp and tcp6),
    as dotted IPv4 or hex IPv6 text."""
    found = []
    for table, family in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if int(port_hex, 16) != port or fields[3] != "0A":  # 0A = LISTEN
                continue
            if family == 4:
                found.append(socket.inet_ntoa(struct.pack("<I", int(address, 16))))
            else:
                found.append(address)
    return found


def is_loopback_address(address: str) -> bool:
    if "." in address:
        return address.startswith("127.")
    return address == "00000000000000000000000001000000"  # ::1 as /proc/net/tcp6 prints it


def non_loopback_ipv4() -> str | None:
    """An address of this machine that is not loopback (the one a default route would use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))  # no packet is sent for UDP connect
            address = sock.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


IN_ACCESS, IN_OPEN = 0x00000001, 0x00000020


@dataclass
class DirectoryWatch:
    """inotify on some directories: records every open (listing a directory opens it) and read of
    the directories themselves and of the files directly inside them (`mask`: IN_OPEN alone counts
    opens only, e.g. one per listing of a subdirectory)."""

    paths: list[Path]
    mask: int = IN_ACCESS | IN_OPEN
    events: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._names = {}
        for path in self.paths:
            wd = libc.inotify_add_watch(self._fd, str(path).encode(), self.mask)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch({path}) failed")
            self._names[wd] = str(path)

    def drain(self) -> list[tuple[str, str]]:
        """Every event so far as (watched dir, entry name or '')."""
        while select.select([self._fd], [], [], 0)[0]:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, _mask, _cookie, length = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16: offset + 16 + length].rstrip(b"\0").decode(errors="replace")
                self.events.append((self._names.get(wd, "?"), name))
                offset += 16 + length
        return self.events

    def close(self) -> None:
        os.close(self._fd)
