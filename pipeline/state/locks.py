"""One file lock: an exclusive ``flock`` on a lock file, across threads and processes.

The kernel drops a ``flock`` when its holder dies, so a crash never leaves a folder locked. The
lock file itself stays (empty, hidden); holding it says nothing on disk, which is why a lock
is never how one process finds another (that is a process record, :mod:`pipeline.state.processes`).
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
from collections.abc import Iterator
from pathlib import Path

_held = threading.local()
"""Lock files this thread holds through a re-entrant :func:`file_lock`, with their depth."""


@contextlib.contextmanager
def file_lock(path: Path | str, *, reentrant: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created, with its folder, if missing) for the body.

    Blocks until no other holder (thread or process) has it. With ``reentrant=True`` a thread
    that already holds the lock this way enters again at once instead of deadlocking on its own
    lock (a second ``flock`` on a new descriptor would wait for the first); the lock is released
    when the outermost holder leaves.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    depth: dict[str, int] = _held.__dict__.setdefault("depth", {})
    if reentrant and depth.get(key):
        depth[key] += 1
        try:
            yield
        finally:
            depth[key] -= 1
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if reentrant:
            depth[key] = 1
        try:
            yield
        finally:
            if reentrant:
                depth[key] = 0
            fcntl.flock(handle, fcntl.LOCK_UN)
