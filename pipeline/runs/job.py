"""Training runs as recorded jobs: every run leaves a run record on disk, whatever happens.

:func:`run_training` trains (in the calling thread), keeps the run record under
``<base_path>/runs/`` up to date while it runs (throttled), exports a version when
asked and the run succeeded (the SavedModel, then its ``.tflite`` and TF.js formats:
:mod:`pipeline.runs.conversions`), and always ends with a final
:class:`pipeline.store.run_record.RunRecord` whose status is ``SUCCEEDED``, ``CANCELLED`` or
``FAILED`` (with the error text).

The CLI (`python -m pipeline.train`) and the demo seeder call it directly; the dashboard runs
the very same function in a child process (:class:`pipeline.runs.process.TrainingProcess`),
because Streamlit resets Keras' global state after every script run, which slows a training
thread in its process by an order of magnitude.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.runs import conversions, lock
from pipeline.runs.report import EtaClock
from pipeline.store import records, versions
from pipeline.store.run_record import RunRecord, RunStatus, Weights
from pipeline.training.fit import Progress, TrainConfig

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
    export_anyway: bool = False,
    requested_at: float | None = None,
) -> RunRecord:
    """Train ``cfg``, record the run under ``base_path`` (if given), export on success.

    Exports only a run that succeeded *and* passed the quality gate
    (:mod:`pipeline.training.quality`); a run with a quality warning is exported only with
    ``export_anyway``, otherwise its record says ``export_held`` (why it was not exported).
    A diverged run is ``failed`` and never exported.

    While it trains, the base path's training lock (:mod:`pipeline.runs.lock`) names this
    process, so no second run starts on the same model folder; ``TrainingBusy`` (a
    ``ValueError``) before anything is written if another run holds it.

    Returns the final run record. Never raises for a failed fit or export: the
    failure is recorded (status ``FAILED``, ``error``) and returned. A bad ``cfg``
    raises ``ValueError`` before anything is written.
    """
    cfg.validate()
    run_id = run_id or records.new_run_id()
    if base_path is not None:
        lock.claim_for_this_process(base_path, run_id)
    try:
        return _run(cfg, base_path, export, on_progress, cancel, run_id, export_anyway,
                    time.time() if requested_at is None else requested_at)
    finally:
        if base_path is not None:
            lock.release(base_path, run_id)


def _run(cfg: TrainConfig, base_path: Path | str | None, export: bool,
         on_progress: Callable[[Progress], None] | None, cancel: threading.Event | None, run_id: str,
         export_anyway: bool, requested_at: float) -> RunRecord:
    from pipeline.training.fit import train

    record = RunRecord(
        id=run_id,
        status=RunStatus.RUNNING,
        started=records.now_iso(),
        config=cfg.to_dict(),
        batch_size=cfg.effective_batch_size,
        true=Weights(tuple(cfg.true_w), cfg.true_b),
        export_requested=bool(export and base_path is not None),
        export_anyway=bool(export_anyway),
        libraries=records.library_versions(),
    )
    last_save = 0.0

    def save(force: bool = False) -> None:
        nonlocal last_save
        if base_path is not None and (force or time.monotonic() - last_save >= SAVE_INTERVAL_S):
            records.save_run(base_path, record)
            last_save = time.monotonic()

    eta = EtaClock()

    def progress(p: Progress) -> None:
        record.progress = {**_progress_entry(p), "eta_s": eta.update(p.elapsed_s, p.fraction)}
        if p.epoch_end:
            record.history.append({"epoch": p.epoch, "loss": p.loss, "mae": p.mae, "w": p.w, "b": p.b})
        save()
        if on_progress is not None:
            on_progress(p)

    save(force=True)
    try:
        result = train(cfg, on_progress=progress, cancel=cancel)
        result.record_into(record)
        warned = result.quality is not None and result.quality.blocks_export
        wanted = result.status is RunStatus.SUCCEEDED and export and base_path is not None
        if wanted and warned and not export_anyway:
            record.export_held = ("not exported automatically: the quality gate warned ("
                                  + " ".join(result.quality.reasons) + ")")
        elif wanted:
            started = time.perf_counter()
            info = versions.export_version(result.model, base_path, record)
            record.version, record.version_path, record.exported = info.version, str(info.path), info.created
            record.exported_anyway = warned
            record.timings["export_s"] = time.perf_counter() - started
            # the SavedModel is in place and served; the other formats never fail the run
            conversions.add_formats(record, info.path)
    except Exception as exc:  # recorded, not raised: a run always ends in a record
        record.status = RunStatus.FAILED
        record.error = f"{type(exc).__name__}: {exc}"
        record.traceback = traceback.format_exc(limit=8)
    record.finished = records.now_iso()
    # end to end: from the request (the click, or the command's start) to the final record,
    # so process start, TensorFlow's import and the export count, not only the fit
    record.timings["end_to_end_s"] = max(0.0, time.time() - requested_at)
    save(force=True)
    return record
