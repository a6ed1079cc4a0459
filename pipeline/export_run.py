"""Export a finished run as a version later, from its run record alone.

A run trained with ``export=False`` can still become a version: the model is one ``Dense``
layer, so its learned ``w`` and ``b`` (stored exactly in the run record, float32 values
round-trip through JSON unchanged) define it completely. :func:`export_run` rebuilds the
very model the run produced with :func:`pipeline.training.build_model`, the same builder
training uses, so the SavedModel and its ``serving_default`` signature are identical to an
automatic export; nothing is retrained, so the version serves exactly the weights the user
saw. It works after a page refresh or a dashboard restart, because it reads only the disk.

``python -m pipeline.export_run --run-id ID [--base-path ...]`` does the same from a shell
and prints ``{"version": N, "path": ...}`` (the dashboard calls it in a child process).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from pipeline import config, registry, runs

_EXPORT_LOCK = threading.Lock()
"""Serialises exports in this process, so two clicks never export one run twice."""


def model_from_record(record: dict[str, Any]) -> Any:
    """The Keras model a run ended with, rebuilt from its learned weights (imports TF)."""
    import numpy as np

    from pipeline.training import TrainConfig, build_model

    cfg = TrainConfig.from_dict(record.get("config") or {})
    learned = record["learned"]
    model = build_model(len(learned["w"]), cfg.optimizer, cfg.learning_rate)
    kernel = np.asarray(learned["w"], dtype=np.float32).reshape(-1, 1)
    bias = np.asarray([learned["b"]], dtype=np.float32)
    model.get_layer("outputs").set_weights([kernel, bias])
    return model


def export_run(base_path: Path | str, run_id: str) -> registry.VersionInfo:
    """Export run ``run_id`` (recorded under ``base_path``) as the next version; return it.

    Only a succeeded run that has no version yet can be exported (``ValueError`` naming
    the reason otherwise: unknown run, still running, cancelled, failed, already version N).
    On success the run record on disk gains ``version``, ``version_path`` and ``exported``,
    so the run history shows which version the run became.
    """
    with _EXPORT_LOCK:
        record = runs.load_run(base_path, run_id)
        if record is None:
            raise ValueError(f"there is no run {run_id!r} under {str(base_path)!r}")
        if record.get("version") is not None:
            raise ValueError(f"run {run_id} is already exported as version {record['version']}")
        status = record.get("status")
        if status != "succeeded":
            raise ValueError(f"run {run_id} {status}; only a run that finished training can be exported")
        if not record.get("learned"):
            raise ValueError(f"run {run_id} has no learned weights to export")
        model = model_from_record(record)
        stored = {k: v for k, v in record.items() if k not in ("progress", "traceback")}
        info = registry.export_version(model, base_path, {**stored, "exported_after_run": True})
        record.update(version=info.version, version_path=str(info.path), exported=info.created)
        runs.save_run(base_path, record)
        return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.export_run",
        description="Export a recorded, succeeded training run as the next version.")
    parser.add_argument("--run-id", required=True,
                        help="the run's id (its record is <base-path>/runs/<id>.json)")
    parser.add_argument("--base-path", type=Path, default=config.MODEL_BASE_PATH,
                        help=f"model base path (default {config.MODEL_BASE_PATH})")
    args = parser.parse_args(argv)
    try:
        info = export_run(args.base_path, args.run_id)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    print(json.dumps({"version": info.version, "path": str(info.path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
