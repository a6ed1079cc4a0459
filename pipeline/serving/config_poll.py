"""Live reload of `--model_config_file`, as TF Serving's `--model_config_file_poll_wait_seconds`.

`ModelConfigPoller` re-reads the file every `wait_seconds` in one daemon thread and hands a config
that differs from the one in force to `ServableManager.apply_config` (the same path gRPC's
HandleReloadConfigRequest takes). A file that cannot be read, parsed or validated leaves the config
in force and is logged once per distinct problem, so a half-written file never unloads a model.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from pipeline.serving.errors import Code, ServingError
from pipeline.serving.manager import ServableManager
from pipeline.serving.model_config import ConfigError, ModelConfig, read_model_config_file
from pipeline.serving.storage import storage_path

log = logging.getLogger(__name__)


class ModelConfigPoller:
    """Polls one models.config file and applies its changes to a manager; `stop()` ends the thread."""

    def __init__(self, path: str | Path, manager: ServableManager, wait_seconds: float,
                 in_force: list[ModelConfig]) -> None:
        self.path = storage_path(str(path))  # a local path or a URI (gs://...)
        self._manager = manager
        self._wait = wait_seconds
        self._in_force = list(in_force)
        self._last_problem: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling every `wait_seconds` (a no-op when it is 0: the file was read once)."""
        if self._wait <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="poll-model-config", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def poll_once(self) -> bool:
        """Read the file now and apply it if it changed; True if a new config was applied."""
        try:
            configs = read_model_config_file(self.path)
        except ConfigError as error:
            self._problem(f"{error}")
            return False
        if configs == self._in_force:
            self._last_problem = None
            return False
        try:
            self._manager.apply_config(configs)
        except ServingError as error:
            if error.code in (Code.INVALID_ARGUMENT, Code.FAILED_PRECONDITION):  # refused (labels: in part)
                self._problem(error.message)
                return False
            log.error("Model config %s applied, but: %s", self.path, error.message)
        self._in_force, self._last_problem = configs, None
        names = ", ".join(c.name for c in configs) or "none"
        log.info("Applied model config %s: models %s", self.path, names)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self._wait):
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - the poller must outlive any one bad poll
                log.exception("Polling model config %s failed; retrying at the next poll", self.path)

    def _problem(self, message: str) -> None:
        if message != self._last_problem:
            log.error("Failed to reload model config %s, keeping the config in force: %s",
                      self.path, message)
        self._last_problem = message
