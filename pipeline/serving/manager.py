"""The servable manager: loads, serves and unloads model versions, and remembers their states.

Contract (mirrors TF Serving's AspiredVersionsManager + AvailabilityPreservingPolicy +
ServableStateMonitor):

- One polling thread per model asks its `VersionSource` for the aspired versions every
  `poll_wait_seconds` and moves towards them one action at a time: unload an un-aspired version
  when nothing is aspired, when an aspired version is AVAILABLE, or when more than one un-aspired
  version is loaded; otherwise load the highest aspired version not yet tried. So a new version is
  loaded *before* the old one is unloaded, and a version that fails to load (state END with its
  error) leaves the old one serving. A failed load is retried `max_load_retries` times,
  `load_retry_interval_seconds` apart (state LOADING meanwhile; start-up does not wait for the
  retries), as TF Serving's `--max_num_load_retries`; after that the version is not tried again
  while it stays aspired, and deleting and re-creating its directory retries it.
- States go START -> LOADING -> AVAILABLE -> UNLOADING -> END. A version is published to lookups
  only after its warm-up, and withdrawn from lookups when UNLOADING is recorded. The history keeps
  every version ever tracked (END forever), answered newest first.
- Lookups (`servable`) never block on loading: they read an immutable snapshot swapped in
  atomically by the polling thread. A request keeps using the `Servable` it got even if the version
  is unloaded meanwhile; the memory goes when the last request drops it.
- Labels come from the config and resolve to a version; they serve only while it is AVAILABLE. As
  TF Serving, a label may be set (at start-up or by a reload) only on an AVAILABLE version unless
  `allow_unavailable_labels` (`--allow_version_labels_for_unavailable_models`).
- The set of models is not fixed: `apply_config` (models.config reloads, gRPC's
  HandleReloadConfigRequest) adds models (loading them), removes models (unloading every version;
  their END history stays answerable), and changes policies, labels and base paths in place.

Thread-safety: every public method may be called from any thread. HTTP is not known here: errors
are `ServingError`s with canonical code names and TF Serving's message texts, so a gRPC API can sit
on the same manager.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from tensorflow_serving.apis import get_model_status_pb2, status_pb2

from pipeline.serving.errors import ServingError
from pipeline.serving.model_config import ConfigError, ModelConfig, configs_from_proto
from pipeline.serving.servable import Servable
from pipeline.serving.source import VersionSource
from pipeline.serving.storage import StoragePath

log = logging.getLogger(__name__)

State = get_model_status_pb2.ModelVersionStatus.State

Loader = Callable[[str, int, StoragePath], Servable]
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

    def __init__(self, config: ModelConfig, history: dict[int, VersionState] | None = None) -> None:
        self.config = config
        self.source = VersionSource(config.name, config.base_path, config.policy)
        self.history: dict[int, VersionState] = history if history is not None else {}
        self.failed: set[int] = set()
        self.wake = threading.Event()      # reconcile now (config changed, or stopping)
        self.removed = threading.Event()   # taken out of the config: the polling thread ends
        # Snapshot read lock-free by lookups; replaced (never mutated) by the polling thread.
        self.available: dict[int, Servable] = {}
        self.latest: Servable | None = None
        self.first_poll_done = threading.Event()
        self.thread: threading.Thread | None = None


class ServableManager:
    """Serves the versions of a fixed set of models; see the module docstring for the contract."""

    def __init__(self, configs: Iterable[ModelConfig], loader: Loader, poll_wait_seconds: float = 1.0,
                 max_load_retries: int = 0, load_retry_interval_seconds: float = 60.0,
                 on_load: LoadListener | None = None, allow_unavailable_labels: bool = False) -> None:
        # Read lock-free by lookups; replaced (never mutated) by `apply_config`.
        self._models = {config.name: _Model(config) for config in configs}
        self._retired: dict[str, dict[int, VersionState]] = {}  # histories of removed models
        self._config_lock = threading.Lock()  # one config change at a time
        self._started = False
        self._loader = loader
        self._poll_wait = poll_wait_seconds
        self._max_load_retries = max(0, max_load_retries)
        self._retry_interval = load_retry_interval_seconds
        self._on_load = on_load
        # --allow_version_labels_for_unavailable_models
        self._allow_unavailable_labels = allow_unavailable_labels
        self._lock = threading.Lock()
        self._stop = threading.Event()

    @property
    def model_names(self) -> list[str]:
        return list(self._models)

    def serves(self, model_name: str) -> bool:
        """Whether `model_name` is configured now (config reloads included): a dict lookup, for
        per-request checks such as which names may become metric labels."""
        return model_name in self._models

    def all_available(self) -> bool:
        """Whether every configured model has a version AVAILABLE now (TF Serving starts its servers
        only then; the gRPC health service says SERVING from then on). Lock-free."""
        return all(model.latest is not None for model in self._models.values())

    def start(self, wait_for_first_poll: bool = True) -> None:
        """Start one polling thread per model. With `wait_for_first_poll`, return once every model
        has tried the versions on disk at start-up (loaded or failed): missing or empty base paths
        do not block, so the server can open its port and report 404 until a version appears."""
        with self._config_lock:
            self._started = True
            for model in self._models.values():
                self._start_polling(model)
        if wait_for_first_poll:
            for model in self._models.values():
                model.first_poll_done.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and drop every servable. Loads in progress finish first (bounded by timeout)."""
        self._stop.set()
        for model in self._models.values():
            model.wake.set()
        for model in self._models.values():
            if model.thread is not None:
                model.thread.join(timeout)
            for version in sorted(model.available, reverse=True):
                self._unload(model, version)

    def poll_once(self, model_name: str) -> None:
        """Reconcile one model with its base path now, in the calling thread. For tests and tools that
        do not `start()` the polling threads: it must not run concurrently with them."""
        self._reconcile(self._models[model_name])

    def apply_config(self, config: Sequence[ModelConfig] | object, wait: bool = True) -> None:
        """Serve exactly the models of `config` from now on (TF Serving's ServerCore::ReloadConfig).

        `config` is a list of `ModelConfig`s or a `ModelServerConfig` message (as gRPC's
        ReloadConfigRequest carries it; an empty message changes nothing, as upstream). New models
        start polling and loading; removed models stop and unload every version (lookups answer
        NOT_FOUND at once, their status keeps the END history); models whose policy, labels or base
        path changed are reconciled now. With `wait`, returns once every added model has tried
        the versions on its base path.

        Labels follow TF Serving's rule (`ServerCore::UpdateModelVersionLabelMap`): a label may name
        only a version AVAILABLE now (an added model's: once it tried its versions) unless
        `allow_unavailable_labels` and the label is new or unchanged. A model whose labels break it
        keeps the config it had (an added model is added without labels).

        Raises ServingError: INVALID_ARGUMENT for a config that does not validate (nothing changes);
        UNKNOWN `N model(s) did not become available: ...` when an added model had versions and
        none loaded (the new config stays in force, as upstream); FAILED_PRECONDITION `Request to
        assign label to version V of model M, which is not currently available for inference` for
        a label that breaks the rule (the other models' changes apply). Thread-safe; calls are
        serialized.
        """
        if isinstance(config, (list, tuple)):
            configs = list(config)
        else:
            if config.WhichOneof("config") is None:  # type: ignore[attr-defined]
                log.info("Taking no action for empty config.")
                return
            try:
                configs = configs_from_proto(config)
            except ConfigError as error:
                raise ServingError("INVALID_ARGUMENT", str(error)) from None
        names = [c.name for c in configs]
        for name in names:
            if names.count(name) > 1:
                raise ServingError("INVALID_ARGUMENT",
                                   f"Illegal to list model {name} multiple times in config list")
        problems: list[str] = []
        with self._config_lock:
            effective = []
            for wanted in configs:
                model = self._models.get(wanted.name)
                problem = self._label_problem(model, wanted) if model is not None else None
                if problem is not None:
                    problems.append(problem)
                    effective.append(model.config)  # type: ignore[union-attr]
                else:
                    effective.append(wanted)
            added = self._swap_models(effective)
        if wait and self._started:
            for model in added:
                model.first_poll_done.wait()
            problems += self._drop_refused_labels(added)
            self._check_available(added)
        if problems:
            raise ServingError("FAILED_PRECONDITION", problems[0])

    def enforce_label_rule(self) -> list[str]:
        """At start-up, once the versions present were tried: drop every label that breaks TF
        Serving's rule (see `apply_config`) and return TF Serving's message for each."""
        with self._config_lock:
            return self._drop_refused_labels(list(self._models.values()))

    def _label_problem(self, model: _Model, config: ModelConfig) -> str | None:
        """TF Serving's refusal of the first label of `config` that `model` may not have now, or None."""
        old = model.config.labels if model.config is not config else {}
        for label, version in config.labels.items():
            if self._allow_unavailable_labels and old.get(label, version) == version:
                continue  # new or unchanged: allowed for unavailable versions with the flag
            if version not in model.available:
                return (f"Request to assign label to version {version} of model {config.name}, "
                        "which is not currently available for inference")
        return None

    def _drop_refused_labels(self, models: list[_Model]) -> list[str]:
        problems = []
        for model in models:
            problem = self._label_problem(model, model.config)
            if problem is not None:
                log.error("%s; the model's labels are not applied", problem)
                problems.append(problem)
                with self._lock:
                    model.config = dataclasses.replace(model.config, labels={})
        return problems

    def _swap_models(self, configs: list[ModelConfig]) -> list[_Model]:
        """Install `configs` (under the config lock); returns the models added."""
        current, models, added = self._models, {}, []
        for config in configs:
            model = current.get(config.name)
            if model is None:
                model = _Model(config, self._retired.pop(config.name, None))
                added.append(model)
                log.info("Adding model %s from base path %s (policy %s)",
                         config.name, config.base_path, config.policy)
            elif model.config != config:
                with self._lock:
                    if (config.base_path, config.policy) != (model.config.base_path, model.config.policy):
                        model.source = VersionSource(config.name, config.base_path, config.policy)
                    model.config = config
                log.info("Updated model %s: base path %s, policy %s, labels %s",
                         config.name, config.base_path, config.policy, config.labels)
                model.wake.set()
            models[config.name] = model
        removed = [model for name, model in current.items() if name not in models]
        self._models = models  # removed models are NOT_FOUND from here on
        for model in removed:
            self._retired[model.config.name] = model.history
            self._remove(model)
        if self._started:
            for model in added:
                self._start_polling(model)
        return added

    def _remove(self, model: _Model) -> None:
        """Stop a removed model's polling (a load in progress finishes first) and unload it all."""
        model.removed.set()
        model.wake.set()
        if model.thread is not None and model.thread is not threading.current_thread():
            model.thread.join()
        for version in sorted(model.available, reverse=True):
            self._unload(model, version)
        log.info("Removed model %s", model.config.name)

    def _check_available(self, added: list[_Model]) -> None:
        failed = [m for m in added if not m.available and m.failed]
        if not failed:
            return
        details = "".join(
            f"{{{{name: {m.config.name} version: {v}}} due to error: {m.history[v].error_message}}}, "
            for m in failed for v in sorted(m.failed))
        raise ServingError("UNKNOWN", f"{len(failed)} model(s) did not become available: {{{details}}}")

    def _start_polling(self, model: _Model) -> None:
        model.thread = threading.Thread(target=self._poll_loop, args=(model,),
                                        name=f"poll-{model.config.name}", daemon=True)
        model.thread.start()

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
        history = model.history if model is not None else self._retired.get(model_name, {})
        with self._lock:
            return [history[v] for v in sorted(history, reverse=True)]

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
        # Without periodic polls (0), the thread still wakes for config changes.
        timeout = self._poll_wait if self._poll_wait > 0 else None
        while True:
            model.wake.wait(timeout)
            model.wake.clear()
            if self._stop.is_set() or model.removed.is_set():
                return
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
        while not (self._stop.is_set() or model.removed.is_set()):
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

    def _load(self, model: _Model, version: int, path: StoragePath) -> None:
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
                if attempt < self._max_load_retries:  # retries go on in the background:
                    model.first_poll_done.set()        # start-up does not wait for them
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
