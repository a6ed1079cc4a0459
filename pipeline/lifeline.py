"""Stop the server (or a training run) when the process that started it is gone.

`pipeline.client.local_server.start` (the dashboard's Start button and autostart) sets
`SERVING_PARENT_PID` to its own pid, and so does `pipeline.runs.process.TrainingProcess.start` for a
training child, which cancels its run through the same watch. The dashboard's atexit hook stops the
server on a normal exit (SIGTERM, Ctrl+C), but not when the dashboard dies without running it:
SIGKILL, or SIGHUP when its terminal is closed. The server runs in its own session (so a Ctrl+C in
the dashboard's terminal does not hit it first), so it would outlive the dashboard and keep its
port. This watch notices that it was re-parented and asks the server to shut down as on SIGTERM.

A server started any other way (no `SERVING_PARENT_PID`) is not affected.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

ENV = "SERVING_PARENT_PID"
CHECK_INTERVAL_S = 0.5


def watch_parent(stop: Callable[[], None], interval_s: float = CHECK_INTERVAL_S) -> threading.Thread | None:
    """If `SERVING_PARENT_PID` names our parent, call `stop()` once that parent is gone; returns the
    watching daemon thread (None when there is nothing to watch)."""
    text = os.environ.get(ENV, "")
    if not text.isdigit() or int(text) != os.getppid():
        return None
    parent = int(text)

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                log.warning("The process that started this server (pid %d) is gone: shutting down", parent)
                stop()
                return

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread
