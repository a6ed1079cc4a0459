"""Loopback ports, polling waits and stopping children: the one definition every test uses.

Tests never sleep to order events; they poll a condition the user (or the server) can observe.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import pytest


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picked it)."""
    with socket.socket() as sock:
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
