"""Run records turned into the rows a person reads: weights tables and run-history rows.

Pure functions over the plain dicts :mod:`pipeline.runs` stores, so the Train and Models
pages show the same columns with the same names, and the rules (what "samples" or "error"
means for a failed run) live in one tested place rather than in two page scripts.
No TensorFlow, no Streamlit (``pipeline.training`` imports TensorFlow only when it trains).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pipeline.data import iter_chunks
from pipeline.training import TrainConfig


def param_names(features: int) -> list[str]:
    """``["w[0]", ..., "b"]``, the labels every table uses."""
    return [f"w[{i}]" for i in range(features)] + ["b"]


def flat_params(weights: dict[str, Any] | None) -> list[float] | None:
    """``{"w": [...], "b": x}`` as ``[*w, b]``, or ``None`` when there are no weights."""
    if not weights or "w" not in weights:
        return None
    return [float(v) for v in weights["w"]] + [float(weights["b"])]


def weights_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per parameter: learned, true and OLS values and the learned one's distance
    to each. Empty when the run learned nothing (it failed before training)."""
    learned = flat_params(record.get("learned"))
    if learned is None:
        return []
    true = flat_params(record.get("true")) or [float("nan")] * len(learned)
    ols = flat_params(record.get("ols")) or [float("nan")] * len(learned)
    return [
        {"parameter": name, "learned": lv, "true": tv, "OLS": ov,
         "learned − true": lv - tv, "learned − OLS": lv - ov}
        for name, lv, tv, ov in zip(param_names(len(learned) - 1), learned, true, ols, strict=True)
    ]


def run_row(record: dict[str, Any]) -> dict[str, Any]:
    """One line of the run history: when, what was asked, how it ended, what it produced.

    Every status gets a row (a failed run shows its error, a cancelled one the epoch it
    reached), so the history tells the whole story, not only the successes.
    """
    cfg = record.get("config") or {}
    errors = record.get("errors") or {}
    history = record.get("history") or []
    epochs = cfg.get("epochs")
    return {
        "run": record.get("id", ""),
        "status": str(record.get("status", "unknown")),
        "started": short_time(record.get("started")),
        "samples": cfg.get("samples"),
        "noise": cfg.get("noise"),
        "epochs": f"{len(history)}/{epochs}" if epochs else "",
        "optimizer": cfg.get("optimizer", ""),
        "max |learned − true|": errors.get("vs_true"),
        "max |learned − OLS|": errors.get("vs_ols"),
        "fit time (s)": (record.get("timings") or {}).get("fit_s"),
        "version": record.get("version"),
        "error": record.get("error", ""),
    }


def short_time(iso: str | None) -> str:
    """``2026-01-02T03:04:05+00:00`` as ``2026-01-02 03:04:05 UTC`` (empty for none)."""
    return str(iso or "").replace("T", " ").replace("+00:00", " UTC")


def data_sample(record: dict[str, Any], max_points: int = 2_000) -> tuple[np.ndarray, np.ndarray]:
    """The first ``max_points`` rows of the data the run trained on, regenerated from its
    config (data is seeded, so these are exactly the training rows, not look-alikes).

    Rows are i.i.d., so the first ones are as good a sample as any, and regenerating only
    them costs milliseconds even for a 10,000,000-row run.
    """
    spec = TrainConfig.from_dict(record.get("config") or {}).data_spec()
    spec.validate()
    return next(iter_chunks(spec, chunk_rows=max(1, int(max_points))))
