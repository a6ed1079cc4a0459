"""One model's versions over time: its polling thread, loads with retries, unloads, and closing.

`ModelLifecycle` is the per-model half of the servable manager (`manager.py` holds the set of
models, lookups, labels and config reloads). Its contract mirrors TF Serving's
AspiredVersionsManager with the AvailabilityPreservingPolicy:

- The polling thread asks the model's `VersionSource` for the aspired versions every
  `poll_wait_seconds` and moves towards them one action at a time: unload an un-aspired version
  when nothing is aspired, when an aspired version is AVAILABLE, or when more than one un-aspired
  version is loaded; otherwise load the highest aspired version not yet tried. So a new version is
  loaded *before* the old one is unloaded, and a version that fails to load (state END with its
  error) leaves the old one serving.
- A poll that fails (the base path is missing or unreadable: `poll` returns None) changes nothing;
  a base path that holds no version unloads every version, as TF Serving.
- A failed load is retried `max_load_retries` times, `load_retry_interval_seconds` apart (state
  LOADING meanwhile; start-up does not wait for the retries), as TF Serving's
  `--max_num_load_retries`; then the version is not tried again while it stays aspired (deleting
  and re-creating its directory retries it). Retries stop at once when the model is removed or
  the server stops (`halt`): the version ends with its last error.
- States go START -> LOADING -> AVAILABLE -> UNLOADING -> END; the history keeps every version ever
  tracked. A version is published (the lock-free snapshot `available`/`latest`) only after its
  warm-up, and withdrawn when UNLOADING is recorded, then retired: requests hold leases on it
  (`lease.py`), and the `Closer` closes it (its Session and graph freed) once the last one lets go.
- A removed model's thread stops (a retry at once, a load in progress when it returns), unloads
  every version and ends; nobody waits for it. A model added again under the same name waits for
  that thread first, so one history is written by one thread at a time.

Thread-safety: the snapshot is read lock-free; history, config and source are written under the
shared lock (`Shared.lock`) by the polling thread and config changes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import tensorflow as tf
from tensorflow_serving.apis import get_model_status_pb2

from pipeline.serving.errors import Code, ServingError
from pipeline.serving.model_config import ModelConfig
from pipeline.serving.servable import Servable
from pipeline.serving.source import VersionSource
from pipeline.serving.storage import StoragePath

log = logging.getLogger(__name__)

State = get_model_status_pb2.ModelVersionStatus.State

Loader = Callable[[str, int, StoragePath], Servable]
"""Builds a Servable for (model name, version, version dir) or raises."""

LoadListener = Callable[[str, int, bool], None]
"""Told (model name, version, succeeded) after each load attempt, e.g. to count it in metrics."""

CloseListener = Callable[[str, int], None]
"""Told (model name, version) once an unloaded version was closed, e.g. to collect the heap."""


@dataclass(frozen=True)
class VersionState:
    """One entry of a model's state history."""

    version: int
    state: int                     # a ModelVersionStatus.State value
    error_code: Code = Code.OK
    error_message: str = ""


class Closer:
    """Closes retired versions in one daemon thread, off the request path: `close(servable)` may be
    called from a request thread (the last lease's release). After `stop`, closes in the caller."""

    def __init__(self, on_close: CloseListener | None) -> None:
        self._on_close = on_close
        self._queue: queue.SimpleQueue[Servable | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def close(self, servable: Servable) -> None:  # a `Leased.retire` on_idle callback
        with self._lock:
            inline = self._stopped
            if not inline and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="close-servables", daemon=True)
                self._thread.start()
        if inline:
            self._close(servable)
        else:
            self._queue.put(servable)

    def stop(self, timeout: float) -> None:
        """Close what is queued (waiting up to `timeout`), then close in the caller from now on."""
        with self._lock:
            self._stopped = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while (servable := self._queue.get()) is not None:
            self._close(servable)

    def _close(self, servable: Servable) -> None:
        try:
            servable.close()
        except Exception:  # noqa: BLE001 - a version that fails to close must not stop the others
            log.exception("Closing servable version {name: %s version: %d} failed",
                          servable.name, servable.version)
            return
        log.info("Closed servable version {name: %s version: %d}: its last request let go",
                 servable.name, servable.version)
        if self._on_close is not None:
            self._on_close(servable.name, servable.version)


@dataclass
class Shared:
    """What every model's lifecycle shares with the manager."""

    loader: Loader
    poll_wait_seconds: float = 1.0
    max_load_retries: int = 0
    load_retry_interval_seconds: float = 60.0
    on_load: LoadListener | None = None
    closer: Closer = field(default_factory=lambda: Closer(None))
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    """Set when the server stops: every polling thread ends."""


class ModelLifecycle:
    """One model's versions; see the module docstring for the contract."""

    def __init__(self, config: ModelConfig, shared: Shared, history: dict[int, VersionState] | None = None,
                 predecessor: ModelLifecycle | None = None) -> None:
        self.config = config
        self.source = VersionSource(config.name, config.base_path, config.policy)
        self.history: dict[int, VersionState] = history if history is not None else {}
        self.failed: set[int] = set()
        self.wake = threading.Event()      # reconcile now (config changed, or stopping)
        self.removed = threading.Event()   # taken out of the config: the polling thread ends
        self.halt = threading.Event()      # removed or stopping: stop waiting for a load retry
        self.predecessor = predecessor     # the same name's removed model, whose thread may still run
        # Snapshot read lock-free by lookups; replaced (never mutated) by the polling thread.
        self.available: dict[int, Servable] = {}
        self.latest: Servable | None = None
        self.first_poll_done = threading.Event()
        self.thread: threading.Thread | None = None
        self._shared = shared
        self.on_removed: Callable[[ModelLifecycle], None] | None = None
        """Told once a removed model's thread unloaded everything and is about to end."""

    @property
    def name(self) -> str:
        return self.config.name

    def start(self) -> None:
        """Start the polling thread."""
        self.thread = threading.Thread(target=self._poll_loop, name=f"poll-{self.name}", daemon=True)
        self.thread.start()

    def remove(self) -> None:
        """Take the model out of service without waiting: its thread stops retrying at once and
        unloads every version as it ends (a model that never started is unloaded here)."""
        self.removed.set()
        self.halt.set()
        self.wake.set()
        if self.thread is None:
            self.unload_all()
            log.info("Removed model %s", self.name)

    def halt_for_stop(self) -> None:
        """The server stops: end retries and wake the thread (`stop` on the shared event first)."""
        self.halt.set()
        self.wake.set()

    def reconcile(self) -> None:
        """Move the model towards its aspired versions (the AvailabilityPreservingPolicy loop)."""
        aspired = self.source.poll()
        if aspired is None:  # the base path could not be listed: nothing is known, nothing changes
            return
        self.failed &= aspired.keys()  # forget failures of versions that went away: retry if they return
        while not (self._shared.stop.is_set() or self.removed.is_set()):
            loaded = self.available
            unaspired = [v for v in loaded if v not in aspired]
            aspired_ready = any(v in loaded for v in aspired)
            if unaspired and (not aspired or aspired_ready or len(unaspired) > 1):
                self.unload(max(unaspired))
                continue
            candidates = [v for v in aspired if v not in loaded and v not in self.failed]
            if not candidates:
                return
            version = max(candidates)
            self._load(version, aspired[version])

    def unload(self, version: int) -> None:
        """Withdraw `version` from lookups, then retire it: it is closed once no request holds it."""
        with self._shared.lock:
            servable = self.available.get(version)
            if servable is None:  # unloaded already (a stopping server and a removed model may race)
                return
            self.history[version] = VersionState(version, State.UNLOADING)
            available = {v: s for v, s in self.available.items() if v != version}
            self.available = available
            self.latest = available[max(available)] if available else None
        servable.retire(self._shared.closer.close)  # closed now, or when the last request lets go
        self._record(VersionState(version, State.END))
        log.info("Unloaded servable version {name: %s version: %d}", self.name, version)

    def unload_all(self) -> None:
        for version in sorted(self.available, reverse=True):
            self.unload(version)

    # -- polling thread ---------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        predecessor, self.predecessor = self.predecessor, None
        if predecessor is not None and predecessor.thread is not None:
            predecessor.thread.join()  # the removed model of this name unloads first: one history
        stop = self._shared.stop
        try:
            self._reconcile_logged()
        finally:
            self.first_poll_done.set()
        # Without periodic polls (0), the thread still wakes for config changes.
        timeout = self._shared.poll_wait_seconds if self._shared.poll_wait_seconds > 0 else None
        while not (stop.is_set() or self.removed.is_set()):
            self.wake.wait(timeout)
            self.wake.clear()
            if stop.is_set() or self.removed.is_set():
                break
            self._reconcile_logged()
        if self.removed.is_set():
            self.unload_all()
            log.info("Removed model %s", self.name)
            if self.on_removed is not None:
                self.on_removed(self)

    def _reconcile_logged(self) -> None:
        try:
            # a TraceMe event per poll: what a profile of an idle server shows (TensorBoard)
            with tf.profiler.experimental.Trace("PollModelBasePath", model=self.name):
                self.reconcile()
        except Exception:
            log.exception("Polling model %s failed; retrying at the next poll", self.name)

    def _load(self, version: int, path: StoragePath) -> None:
        shared, name = self._shared, self.name
        self._record(VersionState(version, State.START))
        self._record(VersionState(version, State.LOADING))
        attempt = 0
        while True:
            try:
                servable = shared.loader(name, version, path)
                break
            except Exception as error:  # noqa: BLE001 - any load failure becomes the version's status
                code, message = ((error.code, error.message) if isinstance(error, ServingError)
                                 else (Code.UNKNOWN, f"{type(error).__name__}: {error}"))
                self._notify(version, ok=False)
                retry = attempt < shared.max_load_retries
                if retry:                       # retries go on in the background:
                    self.first_poll_done.set()  # start-up does not wait for them
                    attempt += 1
                    log.warning("Loading servable version {name: %s version: %d} failed (%s); retry %d of %d "
                                "in %g s", name, version, message, attempt, shared.max_load_retries,
                                shared.load_retry_interval_seconds)
                halted = retry and self.halt.wait(shared.load_retry_interval_seconds)
                if halted:
                    log.info("Retrying of loading servable version {name: %s version: %d} was cancelled: "
                             "the model was removed or the server is stopping", name, version)
                if not retry or halted:
                    log.error("Failed to load servable version {name: %s version: %d}: %s",
                              name, version, message)
                    self.failed.add(version)
                    self._record(VersionState(version, State.END, code, message))
                    return
        with shared.lock:
            halted = self.halt.is_set()  # removed or stopping while it loaded: never published
            if not halted:
                available = dict(self.available)
                available[version] = servable
                self.available = available
                self.latest = available[max(available)]
                self.history[version] = VersionState(version, State.AVAILABLE)
        self._notify(version, ok=True)
        if halted:
            self._record(VersionState(version, State.END))
            servable.retire(shared.closer.close)
            return
        log.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _record(self, state: VersionState) -> None:
        with self._shared.lock:
            self.history[state.version] = state

    def _notify(self, version: int, ok: bool) -> None:
        if self._shared.on_load is not None:
            self._shared.on_load(self.name, version, ok)
