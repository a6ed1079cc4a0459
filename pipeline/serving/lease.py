"""When an unloaded version may be closed: once it is retired and its last in-flight request let go.

A request that looks up a version holds a lease on it (`try_acquire` ... `release`) until it is
answered; the manager retires a version when it unloads it (`retire`). The version is idle, and
`on_idle` runs exactly once, as soon as both are true: at `retire` if nothing holds it, else at
the `release` of the last lease, in the thread that releases it. A retired version refuses new
leases, so a request that looked it up just before it was withdrawn looks again and finds the
version that replaced it (the manager withdraws a version from lookups before retiring it).

Thread-safe; a lease costs one uncontended lock acquisition at each end.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Leased:
    """Lease counting for one loaded version (the base of `Servable`)."""

    def __init__(self) -> None:
        self._lease_lock = threading.Lock()
        self._users = 0
        self._retired = False
        self._on_idle: Callable[[Leased], None] | None = None

    @property
    def users(self) -> int:
        """Requests holding a lease now."""
        return self._users

    @property
    def retired(self) -> bool:
        return self._retired

    def try_acquire(self) -> bool:
        """Take a lease for one request; False once the version is retired (look it up again)."""
        with self._lease_lock:
            if self._retired:
                return False
            self._users += 1
            return True

    def release(self) -> None:
        """Give back a lease taken by `try_acquire`; the last one of a retired version makes it idle."""
        with self._lease_lock:
            self._users -= 1
            idle = self._retired and self._users == 0
            on_idle, self._on_idle = (self._on_idle, None) if idle else (None, self._on_idle)
        if on_idle is not None:
            on_idle(self)

    def retire(self, on_idle: Callable[[Leased], None]) -> None:
        """No new leases from now on; `on_idle(self)` runs once no lease is held (maybe now)."""
        with self._lease_lock:
            if self._retired:
                return
            self._retired = True
            idle = self._users == 0
            if not idle:
                self._on_idle = on_idle
        if idle:
            on_idle(self)
