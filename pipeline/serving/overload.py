"""Load shedding and deadlines: work the server should refuse, and work nobody waits for any more.

Not in TensorFlow Serving (its gRPC server bounds threads instead; its REST server has no bound);
a project extension so that under overload the server keeps answering what it accepted:

- `Admission` bounds the model requests in flight (accepted and not yet answered) in the whole
  server, shared by every front end. Past `--max_pending_requests`, a request is refused at once
  with UNAVAILABLE (HTTP 503) before it is parsed or queued, instead of queueing behind work that
  will time out anyway.
- `Deadline` travels with a request into the worker pool and the batch queue. A request whose
  deadline passed, or whose caller was already answered DEADLINE_EXCEEDED, is dropped before any
  model work is done for it (`expired()` is checked when its turn comes).

Thread-safety: both are safe from any thread. Nothing here knows HTTP or TensorFlow.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pipeline.serving.errors import DeadlineExceeded, ServingError, Unavailable

DEFAULT_MAX_PENDING_REQUESTS = 1024


class Deadline:
    """When a request stops being worth running: a monotonic time (or never), or abandonment."""

    __slots__ = ("at", "abandoned", "seconds")

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.at = None if seconds is None else time.monotonic() + seconds
        self.abandoned = False

    def abandon(self) -> None:
        """The caller got its answer (e.g. a timeout) or left: the work is no longer wanted."""
        self.abandoned = True

    def expired(self) -> bool:
        """Whether running the request now would be wasted work."""
        return self.abandoned or (self.at is not None and time.monotonic() >= self.at)

    def remaining(self) -> float | None:
        """Seconds left before the deadline (0 once passed or abandoned); None without a limit."""
        if self.abandoned:
            return 0.0
        return None if self.at is None else max(0.0, self.at - time.monotonic())

    def error(self) -> ServingError:
        """The answer for a request dropped because of this deadline."""
        limit = f"{round(self.seconds * 1000)} ms" if self.seconds is not None else "its deadline"
        return DeadlineExceeded(f"Request timed out after {limit} before it ran; "
                            "it was dropped without running the model")


class Admission:
    """At most `max_pending` model requests in flight; `enter` refuses the rest at once."""

    def __init__(self, max_pending: int, on_shed: Callable[[], None] | None = None) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending_requests must be positive; was {max_pending}")
        self.max_pending = max_pending
        self._on_shed = on_shed
        self._lock = threading.Lock()
        self._pending = 0

    @property
    def pending(self) -> int:
        """Requests admitted and not yet answered."""
        return self._pending

    def enter(self) -> None:
        """Admit one request, or raise ServingError UNAVAILABLE if `max_pending` are in flight.
        Every successful `enter` must be paired with exactly one `leave`."""
        with self._lock:
            if self._pending >= self.max_pending:
                full = True
            else:
                self._pending += 1
                full = False
        if full:
            if self._on_shed is not None:
                self._on_shed()
            raise Unavailable(f"Server is overloaded: {self.max_pending} requests are "
                               "already pending (--max_pending_requests); retry later")

    def leave(self) -> None:
        """One admitted request was answered."""
        with self._lock:
            self._pending -= 1
