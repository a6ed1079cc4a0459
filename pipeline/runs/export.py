"""Export a finished run as a version later, from its run record alone.

A run trained with ``export=False`` can still become a version: the model is one ``Dense``
layer, so its learned ``w`` and ``b`` (stored exactly in the run record, float32 values
round-trip through JSON unchanged) define it completely. :func:`export_run` rebuilds the
very model the run produced with :func:`pipeline.training.fit.build_model`, the same builder
training uses, so the SavedModel and its ``serving_default`` signature are identical to an
automatic export; nothing is retrained, so the version serves exactly the weights the user
saw. It works after a page refresh or a dashboard restart, because it reads only the disk.

``python -m pipeline.runs.export --run-id ID [--base-path ...]`` does the same from a shell
and prints ``{"version": N, "path": ..., "formats": {...}}`` (the dashboard calls it in a child process).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from pipeline.runs import conversions
from pipeline.settings import Settings
from pipeline.store import records, versions
from pipeline.store.run_record import RunRecord, RunStatus
from pipeline.training.quality import Verdict


def model_from_record(record: RunRecord) -> Any:
    """The Keras model a run ended with, rebuilt from its learned weights (imports TF);
    ``ValueError`` if the record has none."""
    from pipeline.training.fit import TrainConfig, exported_model

    if record.learned is None:
        raise ValueError(f"run {record.id} has no learned weights")
    cfg = TrainConfig.from_dict(record.config)
    return exported_model(list(record.learned.w), record.learned.b, cfg.optimizer, cfg.learning_rate)


def export_run(base_path: Path | str, run_id: str, anyway: bool = False) -> versions.VersionInfo:
    """Export run ``run_id`` (recorded under ``base_path``) as the next version; return it.

    Only a succeeded run that has no version yet can be exported (``ValueError`` naming
    the reason otherwise: unknown run, still running, cancelled, failed, already version N).
    On success the run record on disk gains ``version``, ``version_path`` and ``exported``,
    so the run history shows which version the run became; then the version gets its
    ``.tflite`` and TF.js formats and the record their outcome (``formats``; a failed
    conversion is recorded there and does not fail the export).

    Exports of one base path are serialised across processes (the dashboard exports in a new
    process per click) by :func:`pipeline.store.records.export_lock`, and the record is read
    under that lock, so two concurrent exports of one run give one version, never two.

    A run the quality gate warned about (:mod:`pipeline.training.quality`) is exported only
    with ``anyway=True`` (the dashboard's "Export anyway", ``--anyway``): a new version is
    what TF Serving serves next, so it must be a choice. A diverged run is ``failed`` and
    cannot be exported at all.
    """
    with records.export_lock(base_path):
        record = records.load_run(base_path, run_id)
        if record is None:
            raise ValueError(f"there is no run {run_id!r} under {str(base_path)!r}")
        if record.version is not None:
            raise ValueError(f"run {run_id} is already exported as version {record.version}")
        if record.status is not RunStatus.SUCCEEDED:
            raise ValueError(f"run {run_id} {record.status}; only a run that finished training can be "
                             "exported")
        if record.learned is None:
            raise ValueError(f"run {run_id} has no learned weights to export")
        verdict = Verdict.from_dict(record.quality)
        if verdict is not None and verdict.blocks_export and not anyway:
            raise ValueError(f"run {run_id} did not pass the quality gate ({' '.join(verdict.reasons)}); "
                             "export it anyway only if you mean to serve it")
        model = model_from_record(record)
        info = versions.export_version(model, base_path, dataclasses.replace(record, exported_after_run=True))
        record.version, record.version_path, record.exported = info.version, str(info.path), info.created
        record.exported_anyway = bool(verdict is not None and verdict.blocks_export)
        record.export_held = None
        records.save_run(base_path, record)
    # outside the export lock: the version is in place and served; converting it must not hold up
    # other exports, and a failed conversion is a note in the record, never a failed export
    conversions.add_formats(record, info.path)
    records.save_run(base_path, record)
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.runs.export",
        description="Export a recorded, succeeded training run as the next version.")
    parser.add_argument("--run-id", required=True,
                        help="the run's id (its record is <base-path>/runs/<id>.json)")
    default = Settings.from_env().model_base_path
    parser.add_argument("--base-path", type=Path, default=default,
                        help=f"model base path (default {default})")
    parser.add_argument("--anyway", action="store_true",
                        help="export even though the quality gate warned about the run")
    args = parser.parse_args(argv)
    try:
        info = export_run(args.base_path, args.run_id, anyway=args.anyway)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    record = records.load_run(args.base_path, args.run_id)
    formats = record.formats if record is not None else {}
    print(json.dumps({"version": info.version, "path": str(info.path), "formats": formats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
