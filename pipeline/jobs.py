"""Training runs as recorded jobs: every run leaves a run record on disk, whatever happens.

:func:`run_training` trains (in the calling thread), keeps the run record under
``<base_path>/runs/`` up to date while it runs (throttled), exports a version when
asked and the run succeeded, and always ends with a final record whose ``status`` is
``succeeded``, ``cancelled`` or ``failed`` (with the error text). :class:`TrainingJob`
runs the same thing in a background thread with a cancel switch, so a UI can poll the
record on disk instead of holding the run in memory: a page refresh loses nothing.

:class:`TrainingJob` is for processes that own their Keras state (the CLI, tests, notebooks).
Inside Streamlit use :class:`pipeline.process_jobs.TrainingProcess`, the same run in a child
process: Streamlit resets Keras' global state after every script run, which slows a training
thread in its process by an order of magnitude.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import registry, runs
from pipeline.training import Progress, TrainConfig

SAVE_INTERVAL_S = 0.5
"""A running run's record is rewritten at most this often (plus at every end state)."""


def _progress_entry(p: Progress) -> dict[str, Any]:
    return {
        "epoch": p.epoch,
        "epochs": p.epochs,
        "step": p.step,
        "steps_per_epoch": p.steps_per_epoch,
        "fraction": p.fraction,
        "loss": p.loss,
        "mae": p.mae,
        "w": p.w,
        "b": p.b,
        "elapsed_s": p.elapsed_s,
    }


def run_training(
    cfg: TrainConfig,
    base_path: Path | str | None,
    export: bool = True,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: threading.Event | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Train ``cfg``, record the run under ``base_path`` (if given), export on success.

    Returns the final run record. Never raises for a failed fit or export: the
    failure is recorded (``status="failed"``, ``error``) and returned. A bad ``cfg``
    raises ``ValueError`` before anything is written.
    """
    from pipeline.training import train

    cfg.validate()
    record: dict[str, Any] = {
        "id": run_id or runs.new_run_id(),
        "status": "running",
        "started": runs.now_iso(),
        "config": cfg.to_dict(),
        "batch_size": cfg.effective_batch_size,
        "true": {"w": list(cfg.true_w), "b": cfg.true_b},
        "export_requested": bool(export and base_path is not None),
        "libraries": runs.library_versions(),
        "history": [],
        "progress": None,
    }
    last_save = 0.0

    def save(force: bool = False) -> None:
        nonlocal last_save
        if base_path is not None and (force or time.monotonic() - last_save >= SAVE_INTERVAL_S):
            runs.save_run(base_path, record)
            last_save = time.monotonic()

    def progress(p: Progress) -> None:
        record["progress"] = _progress_entry(p)
        if p.epoch_end:
            record["history"].append({"epoch": p.epoch, "loss": p.loss, "mae": p.mae, "w": p.w, "b": p.b})
        save()
        if on_progress is not None:
            on_progress(p)

    save(force=True)
    try:
        result = train(cfg, on_progress=progress, cancel=cancel)
        record.update(result.summary())
        if result.status == "succeeded" and export and base_path is not None:
            info = registry.export_version(
                result.model, base_path, {k: v for k, v in record.items() if k != "progress"}
            )
            record.update(version=info.version, version_path=str(info.path), exported=info.created)
    except Exception as exc:  # recorded, not raised: a run always ends in a record
        record.update(
            status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8)
        )
    record["finished"] = runs.now_iso()
    save(force=True)
    return record


class TrainingJob:
    """One training run in a daemon thread; its state is the run record on disk.

    ``start()`` returns at once; ``cancel()`` stops the run between batches; ``record()``
    reads the latest record. Thread-safe: the worker is the only writer.
    """

    def __init__(self, cfg: TrainConfig, base_path: Path | str, export: bool = True) -> None:
        cfg.validate()
        registry.check_writable_base_path(base_path)
        self.cfg = cfg
        self.base_path = Path(base_path)
        self.export = export
        self.run_id = runs.new_run_id()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"train-{self.run_id}", daemon=True)
        self.result: dict[str, Any] | None = None

    def start(self) -> TrainingJob:
        self._thread.start()
        return self

    def _work(self) -> None:
        self.result = run_training(
            self.cfg, self.base_path, self.export, cancel=self._cancel, run_id=self.run_id
        )

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def record(self) -> dict[str, Any] | None:
        """The final record once done, else the latest one saved on disk."""
        return self.result if self.result is not None else runs.load_run(self.base_path, self.run_id)
