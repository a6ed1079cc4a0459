"""A front end's worker threads, and the way their answers get back to its event loop, each at the
cost of a request path that runs once per request on a 2-core box.

- `WorkerPool` runs `post(fn, *args)` in one of `num_threads` daemon threads (started on first use)
  taking work from one `queue.SimpleQueue`: a post costs the loop one C-level put, where
  `ThreadPoolExecutor.submit` builds a `Future` (a Condition, two locks) and takes a semaphore per
  call. It is an `Executor` too (`submit` returns a Future), for rare calls such as a config reload
  through `loop.run_in_executor`. After `shutdown` a post raises RuntimeError, as `submit` does;
  work still queued then is dropped unrun (`cancel_futures`), work running finishes.
- `Mailbox` carries answers from any thread to one event loop: `post(settle, *args)` queues the
  call and wakes the loop only if no wake-up is pending, so the answers a batch (or several
  workers) produce while the loop is busy are delivered in one loop callback instead of one
  `call_soon_threadsafe` each. Calls run on the loop in the order they were posted.
- `Expiry` calls `expire(arg)` of each watched request whose time is up, on the loop, at its own time,
  with one loop timer for all of them (armed at the earliest time watched) instead of a timer
  created and cancelled per request; `unwatch` is a dict removal.

Thread-safety: `post` of `WorkerPool` and `Mailbox` may be called from any thread; `Expiry` is the
loop's own.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

log = logging.getLogger(__name__)

_STOP = None


class WorkerPool(Executor):
    """`num_threads` threads running posted calls in arrival order (see the module docstring)."""

    def __init__(self, num_threads: int, name: str) -> None:
        self._size = max(1, num_threads)
        self._name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closed = False

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` in a worker (an exception it raises is only logged: `fn` answers its own
        errors). RuntimeError once shut down."""
        if self._closed:
            raise RuntimeError("cannot schedule new work after shutdown")
        if not self._threads:
            self._start()
        self._queue.put((fn, args))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        """`Executor.submit`: a Future of `fn(*args, **kwargs)`, for calls off the hot path."""
        future: Future = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as error:  # noqa: BLE001 - handed to the future's awaiter
                future.set_exception(error)
            else:
                future.set_result(result)

        self.post(run)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No new work; queued work is dropped if `cancel_futures`; the threads exit once idle."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
        for _ in threads:
            self._queue.put(_STOP)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _start(self) -> None:
        with self._lock:
            if self._threads or self._closed:
                return
            for index in range(self._size):
                thread = threading.Thread(target=self._work, name=f"{self._name}_{index}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        get = self._queue.get
        while (item := get()) is not _STOP:
            fn, args = item
            try:
                fn(*args)
            except Exception:  # a bug must cost one call, never the worker
                log.exception("Worker call failed")
            del item, fn, args  # drop references to a finished request before waiting for the next


class Mailbox:
    """Calls posted from any thread, run on one event loop (see the module docstring)."""

    __slots__ = ("loop", "_calls", "_armed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._calls: collections.deque = collections.deque()
        self._armed = False

    def post(self, call: Callable[..., Any], *args: Any) -> None:
        """Run `call(*args)` on the loop soon; silently dropped if the loop is closed."""
        self._calls.append((call, args))
        if not self._armed:  # appended first: a delivery running now, or the one armed here, sees it
            self._armed = True
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:  # the loop closed: the server is shutting down
                self._armed = False

    def _deliver(self) -> None:
        self._armed = False  # before draining: a post from now on arms a new delivery
        calls = self._calls
        while calls:
            call, args = calls.popleft()
            try:
                call(*args)
            except Exception:  # one bad call must not hold back the answers after it
                log.exception("Loop call failed")


class Expiry:
    """Watched requests of one event loop, each expired at its own loop time (see the module docstring)."""

    __slots__ = ("loop", "_due", "_timer", "_timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._due: dict[Any, tuple[float, Callable[[Any], Any], Any]] = {}  # key -> (loop time, expire, arg)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def watch(self, key: Any, delay: float, expire: Callable[[Any], Any], arg: Any) -> None:
        """Call `expire(arg)` in `delay` seconds unless `unwatch(key)` comes first (on the loop)."""
        at = self.loop.time() + delay
        self._due[key] = (at, expire, arg)
        if self._timer is None or at < self._timer_at:
            self._arm(at)

    def unwatch(self, key: Any) -> None:
        """Stop watching `key` (nothing if it is not watched)."""
        self._due.pop(key, None)

    def _arm(self, at: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self.loop.call_at(at, self._fire), at

    def _fire(self) -> None:
        """Expire what is due; re-arm for the earliest time still watched."""
        self._timer = None
        now = self.loop.time()
        due = sorted(((at, key, expire, arg) for key, (at, expire, arg) in self._due.items() if at <= now),
                     key=lambda item: item[0])  # keys (tickets) need not be orderable
        for _, key, _, _ in due:
            del self._due[key]
        for _, _, expire, arg in due:  # earliest first, also when a late turn finds several due
            try:
                expire(arg)
            except Exception:  # one bad callback must not keep the others from expiring
                log.exception("Expiry callback failed")
        if self._due and self._timer is None:
            self._arm(min(at for at, _, _ in self._due.values()))
