"""The servable manager: the models served, their lookups, labels, status and live config changes.

Contract (mirrors TF Serving's ServerCore + AspiredVersionsManager + ServableStateMonitor):

- Each model's versions are followed by its own `ModelLifecycle` (`lifecycle.py`: one polling
  thread, load before unload, retries, a failed poll changes nothing, unloaded versions closed once
  their last request lets go).
- Lookups (`servable`, `acquire`) never block on loading: they read an immutable snapshot swapped
  in atomically by the polling threads. A request holds a lease on the `Servable` it got
  (`acquire` ... `Servable.release`), so it keeps working if the version is unloaded meanwhile.
- Labels come from the config and resolve to a version; they serve only while it is AVAILABLE. As
  TF Serving, a label may be set (at start-up or by a reload) only on an AVAILABLE version unless
  `allow_unavailable_labels` (`--allow_version_labels_for_unavailable_models`).
- The set of models is not fixed: `apply_config` (models.config reloads, gRPC's
  HandleReloadConfigRequest) adds models (loading them), removes models (unloading every version;
  their END history stays answerable), and changes policies, labels and base paths in place. It
  never waits for a removed model: its thread stops its retries at once and unloads as it ends.

Thread-safety: every public method may be called from any thread. HTTP is not known here: errors
are `ServingError`s with TF Serving's message texts, so every front end sits on the same manager.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Iterable, Sequence

from tensorflow_serving.apis import get_model_status_pb2

from pipeline.serving.errors import Code, FailedPrecondition, InvalidArgument, NotFound, Unknown
from pipeline.serving.lifecycle import (
    CloseListener,
    Closer,
    Loader,
    LoadListener,
    ModelLifecycle,
    Shared,
    State,
    VersionState,
)
from pipeline.serving.model_config import ConfigError, ModelConfig, configs_from_proto
from pipeline.serving.servable import Servable
from pipeline.serving.source import VersionSource

__all__ = ["ServableManager", "State", "VersionState"]

log = logging.getLogger(__name__)

ConfigListener = Callable[[list[ModelConfig]], list[str]]
"""Told the configs in force at `start` and after each `apply_config`; returns a message per part
it refuses (the request logs: a `logging_config` that cannot be honoured)."""


class ServableManager:
    """Serves the versions of a set of models; see the module docstring for the contract."""

    def __init__(self, configs: Iterable[ModelConfig], loader: Loader, poll_wait_seconds: float = 1.0,
                 max_load_retries: int = 0, load_retry_interval_seconds: float = 60.0,
                 on_load: LoadListener | None = None, allow_unavailable_labels: bool = False,
                 on_close: CloseListener | None = None, on_config: ConfigListener | None = None) -> None:
        self._shared = Shared(loader, poll_wait_seconds, max(0, max_load_retries),
                              load_retry_interval_seconds, on_load, Closer(on_close))
        # Read lock-free by lookups; replaced (never mutated) by `apply_config`.
        self._models = {config.name: ModelLifecycle(config, self._shared) for config in configs}
        self._retired: dict[str, dict[int, VersionState]] = {}  # histories of removed models
        self._removing: dict[str, ModelLifecycle] = {}  # removed models whose thread may still run
        self._config_lock = threading.Lock()  # one config change at a time
        self._started = False
        self._on_config = on_config
        # --allow_version_labels_for_unavailable_models
        self._allow_unavailable_labels = allow_unavailable_labels

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
            self._tell_config()  # refusals are logged by the listener; the models serve either way
            for model in self._models.values():
                self._start_polling(model)
        if wait_for_first_poll:
            for model in self._models.values():
                model.first_poll_done.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and unload every version (each is closed once its requests let go). Load
        retries stop at once; a load attempt in progress finishes first (bounded by `timeout`)."""
        self._shared.stop.set()
        with self._config_lock:
            models = [*self._models.values(), *self._removing.values()]
        for model in models:
            model.halt_for_stop()
        for model in models:
            if model.thread is not None and model.thread is not threading.current_thread():
                model.thread.join(timeout)
            model.unload_all()
        self._shared.closer.stop(timeout)

    def poll_once(self, model_name: str) -> None:
        """Reconcile one model with its base path now, in the calling thread. For tests and tools that
        do not `start()` the polling threads: it must not run concurrently with them."""
        self._models[model_name].reconcile()

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
        a label that breaks the rule (the other models' changes apply); INVALID_ARGUMENT with the
        config listener's message for a part it refuses (a `logging_config` that cannot be honoured:
        everything else applies). Thread-safe; calls are serialized.
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
                raise InvalidArgument(str(error)) from None
        names = [c.name for c in configs]
        for name in names:
            if names.count(name) > 1:
                raise InvalidArgument(f"Illegal to list model {name} multiple times in config list")
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
            refused = self._tell_config()
        if wait and self._started:
            for model in added:
                model.first_poll_done.wait()
            problems += self._drop_refused_labels(added)
            self._check_available(added)
        if problems:
            raise FailedPrecondition(problems[0])
        if refused:
            raise InvalidArgument(refused[0])

    def _tell_config(self) -> list[str]:
        """The config listener's refusals of the configs in force (none without a listener)."""
        if self._on_config is None:
            return []
        return self._on_config([model.config for model in self._models.values()])

    def enforce_label_rule(self) -> list[str]:
        """At start-up, once the versions present were tried: drop every label that breaks TF
        Serving's rule (see `apply_config`) and return TF Serving's message for each."""
        with self._config_lock:
            return self._drop_refused_labels(list(self._models.values()))

    def _label_problem(self, model: ModelLifecycle, config: ModelConfig) -> str | None:
        """TF Serving's refusal of the first label of `config` that `model` may not have now, or None."""
        old = model.config.labels if model.config is not config else {}
        for label, version in config.labels.items():
            if self._allow_unavailable_labels and old.get(label, version) == version:
                continue  # new or unchanged: allowed for unavailable versions with the flag
            if version not in model.available:
                return (f"Request to assign label to version {version} of model {config.name}, "
                        "which is not currently available for inference")
        return None

    def _drop_refused_labels(self, models: list[ModelLifecycle]) -> list[str]:
        problems = []
        for model in models:
            problem = self._label_problem(model, model.config)
            if problem is not None:
                log.error("%s; the model's labels are not applied", problem)
                problems.append(problem)
                with self._shared.lock:
                    model.config = dataclasses.replace(model.config, labels={})
        return problems

    def _swap_models(self, configs: list[ModelConfig]) -> list[ModelLifecycle]:
        """Install `configs` (under the config lock); returns the models added."""
        current, models, added = self._models, {}, []
        for config in configs:
            model = current.get(config.name)
            if model is None:
                model = ModelLifecycle(config, self._shared, self._retired.pop(config.name, None),
                                       self._removing.pop(config.name, None))
                added.append(model)
                log.info("Adding model %s from base path %s (policy %s)",
                         config.name, config.base_path, config.policy)
            elif model.config != config:
                with self._shared.lock:
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
            self._retired[model.name] = model.history
            if model.thread is not None:
                self._removing[model.name] = model
                model.on_removed = self._forget_removed
            model.remove()  # returns at once: the model's own thread unloads it
        if self._started:
            for model in added:
                self._start_polling(model)
        return added

    def _forget_removed(self, model: ModelLifecycle) -> None:
        with self._config_lock:
            if self._removing.get(model.name) is model:
                del self._removing[model.name]

    def _check_available(self, added: list[ModelLifecycle]) -> None:
        failed = [m for m in added if not m.available and m.failed]
        if not failed:
            return
        details = "".join(
            f"{{{{name: {m.name} version: {v}}} due to error: {m.history[v].error_message}}}, "
            for m in failed for v in sorted(m.failed))
        raise Unknown(f"{len(failed)} model(s) did not become available: {{{details}}}")

    def _start_polling(self, model: ModelLifecycle) -> None:
        model.start()

    def acquire(self, model_name: str, version: int | None = None, label: str | None = None) -> Servable:
        """`servable(...)` with a lease taken on it for one request: call `release()` on it once the
        request no longer uses it (an unloaded version is closed after its last release)."""
        while True:
            servable = self.servable(model_name, version, label)
            if servable.try_acquire():
                return servable
            # Retired between the lookup and the lease: the snapshot has moved on, look again.

    def servable(self, model_name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names: by label, by version, else the highest AVAILABLE version.

        Raises ServingError: INVALID_ARGUMENT for no model name (`ModelSpec has no name specified.`,
        as TF Serving's ServerCore) or an unknown label, NOT_FOUND when nothing AVAILABLE matches
        (`Servable not found for request: Latest(m)` / `Specific(m, v)`).
        """
        if not model_name:
            raise InvalidArgument("ModelSpec has no name specified.")
        model = self._models.get(model_name)
        if label is not None:
            version = model.config.labels.get(label) if model is not None else None
            if version is None:
                raise InvalidArgument(f"Unrecognized servable version label: {label}")
        if version is None:
            latest = model.latest if model is not None else None
            if latest is None:
                raise NotFound(f"Servable not found for request: Latest({model_name})")
            return latest
        found = model.available.get(version) if model is not None else None
        if found is None:
            raise NotFound(f"Servable not found for request: Specific({model_name}, {version})")
        return found

    def version_states(self, model_name: str) -> list[VersionState]:
        """Every tracked version of a model, newest first ([] if none or unknown model)."""
        model = self._models.get(model_name)
        history = model.history if model is not None else self._retired.get(model_name, {})
        with self._shared.lock:
            return [history[v] for v in sorted(history, reverse=True)]

    def model_status(self, model_name: str, version: int | None = None
                     ) -> get_model_status_pb2.GetModelStatusResponse:
        """GetModelStatusResponse as TF Serving builds it: labels are not resolved here (TF Serving
        ignores them for status), so callers pass only an explicit version. Raises NOT_FOUND."""
        states = self.version_states(model_name)
        if version is not None:
            states = [s for s in states if s.version == version]
            if not states:
                raise NotFound(f"Could not find version {version} of model {model_name}")
        elif not states:
            raise NotFound(f"Could not find any versions of model {model_name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for entry in states:
            status = response.model_version_status.add(version=entry.version, state=entry.state)
            status.status.error_code = Code.of(entry.error_code).number
            status.status.error_message = entry.error_message
        return response

