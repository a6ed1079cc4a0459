"""Loopback ports, polling waits and stopping children: the one definition every test uses.

Tests never sleep to order events; they poll a condition the user (or the server) can observe.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from collections.abc import Callable

import pytest

_HANDED_OUT: set[int] = set()
_FIRST_PORT = 20000
"""Servers in tests listen on ports below the kernel's ephemeral range: a port the kernel hands
to an outgoing connection (any client in the suite, or on the machine) can never be the one a
server was told to bind between `free_port()` and its `bind()`."""


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, below the ephemeral range (so no outgoing
    connection takes it before the server binds it) and not handed out before in this process."""
    low = _ephemeral_low()
    candidates = list(range(_FIRST_PORT, low)) if low - _FIRST_PORT >= 1000 else []
    random.shuffle(candidates)
    for port in candidates:
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as sock:  # an unusual port range: let the kernel pick
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.05) -> object:
    """Poll `predicate` until it returns something truthy and return that; fail the test after
    `timeout` seconds, naming the condition."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            name = getattr(predicate, "__name__", "condition")
            pytest.fail(f"{name} not met within {timeout} s")
        time.sleep(interval)


def stop_process(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """End a child the test started: SIGTERM, then SIGKILL if it is still there after `timeout` s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
