"""HTTP sessions pooled per server: one pool per base URL, shared by every client and thread of the
process, closed when the process exits.

A `requests.Session` keeps connections alive, but it is not documented as safe to use from two
threads at once. The dashboard runs each script run of each session in a new thread, so a session
per thread means a new session (and a new connection) per click, never reused and never closed.
Here a thread borrows an idle session of the server's pool for one exchange and gives it back:
each session serves one thread at a time, and its kept-alive connection serves the next request to
the same server, whichever thread sends it. At most `MAX_IDLE` idle sessions are kept per server
(a burst beyond that closes the extras as they come back); `close_all` runs at exit::

    with pool_for("http://127.0.0.1:8501").session() as session:
        response = session.get("http://127.0.0.1:8501/v1/models/m", timeout=5)
"""

from __future__ import annotations

import atexit
import contextlib
import threading
from collections.abc import Iterator

import requests

MAX_IDLE = 8
"""Idle sessions (each with its kept-alive connections) kept per server."""


class SessionPool:
    """`requests.Session`s for one server, each lent to one thread at a time."""

    def __init__(self, base_url: str, max_idle: int = MAX_IDLE) -> None:
        self.base_url = base_url
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[requests.Session] = []
        self._closed = False
        self.created = 0
        """Sessions made so far (a new one only when every earlier one is lent out)."""

    def __repr__(self) -> str:
        return f"SessionPool({self.base_url!r}, idle={self.idle}, created={self.created})"

    @property
    def idle(self) -> int:
        """Sessions waiting to be lent."""
        with self._lock:
            return len(self._idle)

    @property
    def closed(self) -> bool:
        with self._lock:
            return self._closed

    @contextlib.contextmanager
    def session(self) -> Iterator[requests.Session]:
        """Lend a session for one exchange (read the whole answer inside the block); it goes back to
        the pool after, or is closed if the pool is full or closed (a closed pool lends a new session
        each time, for a thread still sending while the process exits)."""
        with self._lock:
            session = self._idle.pop() if self._idle else None
            if session is None:
                self.created += 1
        if session is None:
            session = requests.Session()
        try:
            yield session
        finally:
            with self._lock:
                keep = not self._closed and len(self._idle) < self.max_idle
                if keep:
                    self._idle.append(session)
            if not keep:
                session.close()

    def close(self) -> None:
        """Close every idle session (and their connections); sessions lent out close when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()


_pools: dict[str, SessionPool] = {}
_pools_lock = threading.Lock()


def pool_for(base_url: str) -> SessionPool:
    """The process's pool for the server at `base_url` (normalised by the caller), made on first use."""
    with _pools_lock:
        pool = _pools.get(base_url)
        if pool is None:
            pool = _pools[base_url] = SessionPool(base_url)
        return pool


def close_all() -> None:
    """Close every pool (registered to run at process exit); later calls get fresh pools."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.close()


atexit.register(close_all)
