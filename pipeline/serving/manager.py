"""The servable manager: loads, serves and unloads model versions, and remembers their states.

Contract (mirrors TF Serving's AspiredVersionsManager + AvailabilityPreservingPolicy +
ServableStateMonitor):

- One polling thread per model asks its `VersionSource` for the aspired versions every
  `poll_wait_seconds` and moves towards them one action at a time: unload an un-aspired version
  when nothing is aspired, when an aspired version is AVAILABLE, or when more than one un-aspired
  version is loaded; otherwise load the highest aspired version not yet tried. So a new version is
  loaded *before* the old one is unloaded, and a version that fails to load (state END with its
  error) leaves the old one serving. A failed version is not retried while it stays aspired;
  deleting and re-creating its directory retries it.
- States go START -> LOADING -> AVAILABLE -> UNLOADING -> END. A version is published to lookups
  only after its warm-up, and withdrawn from lookups when UNLOADING is recorded. The history keeps
  every version ever tracked (END forever), answered newest first.
- Lookups (`servable`) never block on loading: they read an immutable snapshot swapped in
  atomically by the polling thread. A request keeps using the `Servable` it got even if the version
  is unloaded meanwhile; the memory goes when the last request drops it.
- Labels come from the config and resolve to a version; they serve only while it is AVAILABLE.

Thread-safety: every public method may be called from any thread. HTTP is not known here: errors
are `ServingError`s with canonical code names and TF Serving's message texts, so a gRPC API can sit
on the same manager.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tensorflow_serving.apis import get_model_status_pb2, status_pb2

from pipeline.serving.errors import ServingError
from pipeline.serving.model_config import ModelConfig
from pipeline.serving.servable import Servable
from pipeline.serving.source import VersionSource

log = logging.getLogger(__name__)

State = get_model_status_pb2.ModelVersionStatus.State

Loader = Callable[[str, int, Path], Servable]
"""Builds a Servable for (model name, version, version dir) or raises."""

LoadListener = Callable[[str, int, bool], None]
"""Told (model name, version, succeeded) after each load attempt, e.g. to count it in metrics."""


@dataclass(frozen=True)
class VersionState:
    """One entry of a model's state history."""

    version: int
    state: int                     # a ModelVersionStatus.State value
    error_code: str = "OK"
    error_message: str = ""


class _Model:
    """Per-model bookkeeping; written only by the model's polling thread (under the manager lock)."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.source = VersionSource(config.name, config.base_path, config.policy)
        self.history: dict[int, VersionState] = {}
        self.failed: set[int] = set()
        # Snapshot read lock-free by lookups; replaced (never mutated) by the polling thread.
        self.available: dict[int, Servable] = {}
        self.latest: Servable | None = None
        self.first_poll_done = threading.Event()
        self.thread: threading.Thread | None = None


class ServableManager:
    """Serves the versions of a fixed set of models; see the module docstring for the contract."""

    def __init__(self, configs: Iterable[ModelConfig], loader: Loader, poll_wait_seconds: float = 1.0,
                 max_load_retries: int = 0, load_retry_interval_seconds: float = 60.0,
                 on_load: LoadListener | None = None) -> None:
        self._models = {config.name: _Model(config) for config in configs}
        self._loader = loader
        self._poll_wait = poll_wait_seconds
        self._max_load_retries = max(0, max_load_retries)
        self._retry_interval = load_retry_interval_seconds
        self._on_load = on_load
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    def start(self, wait_for_first_poll: bool = True) -> None:
        """Start one polling thread per model. With `wait_for_first_poll`, return once every model
        has tried the versions on disk at start-up (loaded or failed): missing or empty base paths
        do not block, so the server can open its port and report 404 until a version appears."""
        for model in self._models.values():
            model.thread = threading.Thread(target=self._poll_loop, args=(model,),
                                            name=f"poll-{model.config.name}", daemon=True)
            model.thread.start()
        if wait_for_first_poll:
            for model in self._models.values():
                model.first_poll_done.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and drop every servable. Loads in progress finish first (bounded by timeout)."""
        self._stop.set()
        for model in self._models.values():
            if model.thread is not None:
                model.thread.join(timeout)
            for version in sorted(model.available, reverse=True):
                self._unload(model, version)

    def poll_once(self, model_name: str) -> None:
        """Reconcile one model with its base path now, in the calling thread. For tests and tools that
        do not `start()` the polling threads: it must not run concurrently with them."""
        self._reconcile(self._models[model_name])

    def servable(self, model_name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names: by label, by version, else the highest AVAILABLE version.

        Raises ServingError: INVALID_ARGUMENT for an unknown label, NOT_FOUND when nothing AVAILABLE
        matches (`Servable not found for request: Latest(m)` / `Specific(m, v)`).
        """
        model = self._models.get(model_name)
        if label is not None:
            version = model.config.labels.get(label) if model is not None else None
            if version is None:
                raise ServingError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
        if version is None:
            latest = model.latest if model is not None else None
            if latest is None:
                raise ServingError("NOT_FOUND", f"Servable not found for request: Latest({model_name})")
            return latest
        found = model.available.get(version) if model is not None else None
        if found is None:
            raise ServingError("NOT_FOUND",
                               f"Servable not found for request: Specific({model_name}, {version})")
        return found

    def version_states(self, model_name: str) -> list[VersionState]:
        """Every tracked version of a model, newest first ([] if none or unknown model)."""
        model = self._models.get(model_name)
        if model is None:
            return []
        with self._lock:
            return [model.history[v] for v in sorted(model.history, reverse=True)]

    def model_status(self, model_name: str, version: int | None = None
                     ) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatusResponse as TF Serving builds it: labels are not resolved here (TF Serving
        ignores them for status), so callers pass only an explicit version. Raises NOT_FOUND."""
        states = self.version_states(model_name)
        if version is not None:
            states = [s for s in states if s.version == version]
            if not states:
                raise ServingError("NOT_FOUND", f"Could not find version {version} of model {model_name}")
        elif not states:
            raise ServingError("NOT_FOUND", f"Could not find any versions of model {model_name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in states:
            status = response.model_version_status.add(version=entry.version, state=entry.state)
            status.status.error_code = _error_code_value(entry.error_code)
            status.status.error_message = entry.error_message
        return response

    # -- polling thread ---------------------------------------------------------------------------

    def _poll_loop(self, model: _Model) -> None:
        try:
            self._reconcile_logged(model)
        finally:
            model.first_poll_done.set()
        if self._poll_wait <= 0:
            return
        while not self._stop.wait(self._poll_wait):
            self._reconcile_logged(model)

    def _reconcile_logged(self, model: _Model) -> None:
        try:
            self._reconcile(model)
        except Exception:
            log.exception("Polling model %s failed; retrying at the next poll", model.config.name)

    def _reconcile(self, model: _Model) -> None:
        """Move the model towards its aspired versions (the AvailabilityPreservingPolicy loop)."""
        aspired = model.source.poll()
        model.failed &= aspired.keys()  # forget failures of versions that went away: retry if they return
        while not self._stop.is_set():
            loaded = model.available
            unaspired = [v for v in loaded if v not in aspired]
            aspired_ready = any(v in loaded for v in aspired)
            if unaspired and (not aspired or aspired_ready or len(unaspired) > 1):
                self._unload(model, max(unaspired))
                continue
            candidates = [v for v in aspired if v not in loaded and v not in model.failed]
            if not candidates:
                return
            version = max(candidates)
            self._load(model, version, aspired[version])

    def _load(self, model: _Model, version: int, path: Path) -> None:
        name = model.config.name
        self._record(model, VersionState(version, State.START))
        self._record(model, VersionState(version, State.LOADING))
        attempt = 0
        while True:
            try:
                servable = self._loader(name, version, path)
                break
            except Exception as error:  # noqa: BLE001 - any load failure becomes the version's status
                code, message = ((error.code, error.message) if isinstance(error, ServingError)
                                 else ("UNKNOWN", f"{type(error).__name__}: {error}"))
                self._notify(name, version, ok=False)
                if attempt >= self._max_load_retries or self._stop.wait(self._retry_interval):
                    log.error("Failed to load servable version {name: %s version: %d}: %s",
                              name, version, message)
                    model.failed.add(version)
                    self._record(model, VersionState(version, State.END, code, message))
                    return
                attempt += 1
                log.warning("Loading %s version %d failed (%s); retry %d of %d",
                            name, version, message, attempt, self._max_load_retries)
        with self._lock:
            available = dict(model.available)
            available[version] = servable
            model.available = available
            model.latest = available[max(available)]
            model.history[version] = VersionState(version, State.AVAILABLE)
        self._notify(name, version, ok=True)
        log.info("Successfully loaded servable version {name: %s version: %d}", name, version)

    def _unload(self, model: _Model, version: int) -> None:
        with self._lock:
            model.history[version] = VersionState(version, State.UNLOADING)
            available = {v: s for v, s in model.available.items() if v != version}
            model.available = available
            model.latest = available[max(available)] if available else None
        # The servable is freed when the last in-flight request lets go of it.
        self._record(model, VersionState(version, State.END))
        log.info("Unloaded servable version {name: %s version: %d}", model.config.name, version)

    def _record(self, model: _Model, state: VersionState) -> None:
        with self._lock:
            model.history[state.version] = state

    def _notify(self, name: str, version: int, ok: bool) -> None:
        if self._on_load is not None:
            self._on_load(name, version, ok)


_ERROR_CODES = status_pb2.StatusProto.DESCRIPTOR.fields_by_name["error_code"].enum_type.values_by_name


def _error_code_value(code_name: str) -> int:
    """The StatusProto error_code enum value for a canonical code name (UNKNOWN if unrecognised)."""
    return (_ERROR_CODES.get(code_name) or _ERROR_CODES["UNKNOWN"]).number
