"""Run records turned into the rows a person reads: weights tables and run-history rows.

Pure functions over :class:`pipeline.store.run_record.RunRecord`, so the Train and Models
pages show the same columns with the same names, and the rules (what "samples" or "error"
means for a failed run) live in one tested place rather than in two page scripts.
No TensorFlow, no Streamlit (``pipeline.training.fit`` imports TensorFlow only when it trains).
"""

from __future__ import annotations

import collections
from datetime import UTC, datetime
from typing import Any

import numpy as np

from pipeline.store.run_record import RunRecord, RunStatus
from pipeline.training.data import iter_chunks
from pipeline.training.fit import TrainConfig


def param_names(features: int) -> list[str]:
    """``["w1", "w2", ..., "b"]``: the names every table, chart and the CLI use, matching the
    input features ``x1``, ``x2`` (so ``w1`` is the weight of ``x1``) on every page."""
    return [f"w{i + 1}" for i in range(features)] + ["b"]


def weights_rows(record: RunRecord) -> list[dict[str, Any]]:
    """One row per parameter: learned, true and OLS values and the learned one's distance
    to each. Empty when the run learned nothing (it failed before training)."""
    if record.learned is None:
        return []
    learned = record.learned.flat
    true = record.true.flat if record.true is not None else [float("nan")] * len(learned)
    ols = record.ols.flat if record.ols is not None else [float("nan")] * len(learned)
    return [
        {"parameter": name, "learned": lv, "true": tv, "OLS": ov,
         "learned − true": lv - tv, "learned − OLS": lv - ov}
        for name, lv, tv, ov in zip(param_names(len(learned) - 1), learned, true, ols, strict=True)
    ]


RUN_COLUMN_FORMATS = {"samples": "localized", "noise": "%g", "version": "%d",
                      "max |learned − true|": "%.4g", "max |learned − OLS|": "%.4g",
                      "fit time (s)": "%.1f", "end to end (s)": "%.1f"}
"""How the run-history columns show their numbers (Streamlit number formats): counts with
thousands separators, errors with 4 significant digits (0.0004 and 9,974 alike), times in
tenths of a second."""


def version_note(record: RunRecord, on_disk: set[int] | None = None) -> str:
    """What became of a run's model, in words: ``deleted`` when its version is no longer on
    disk (numbers are never reused, so it stays a gap), ``exported anyway`` when the quality
    gate had warned, ``held: quality warning`` when the gate kept it from being exported."""
    if record.version is not None:
        if on_disk is not None and record.version not in on_disk:
            return "deleted"
        return "exported anyway (quality warning)" if record.exported_anyway else "on disk"
    if record.export_held:
        return "held: quality warning"
    return ""


def run_row(record: RunRecord, on_disk: set[int] | None = None) -> dict[str, Any]:
    """One line of the run history: when, what was asked, how it ended, what it produced.

    Every status gets a row (a failed run shows its error, a cancelled one the epoch it
    reached), so the history tells the whole story, not only the successes. ``on_disk`` (the
    version numbers that exist) lets the row say that a run's version was deleted since.
    """
    cfg = record.config
    epochs = cfg.get("epochs")
    return {
        "run": record.id,
        "status": str(record.status),
        "version": record.version,
        "version note": version_note(record, on_disk),
        # a cancelled run was never judged as a result: its partial weights are not a verdict
        "quality": record.quality_level if record.status is not RunStatus.CANCELLED else None,
        "started": short_time(record.started),
        "samples": cfg.get("samples"),
        "noise": cfg.get("noise"),
        "epochs": f"{record.epochs_done:,}/{epochs:,}" if epochs else "",
        "optimizer": cfg.get("optimizer", ""),
        "max |learned − true|": record.errors.vs_true if record.errors is not None else None,
        "max |learned − OLS|": record.errors.vs_ols if record.errors is not None else None,
        "fit time (s)": record.timings.get("fit_s"),
        "end to end (s)": record.timings.get("end_to_end_s"),
        "error": record.error or "",
    }


def short_time(iso: str | None) -> str:
    """An ISO-8601 time as people read it, in this machine's local time zone:
    ``2026-01-02T03:04:05+00:00`` -> ``2 Jan 2026, 03:04:05 UTC`` (empty for none; text
    that is not a time is returned as it is)."""
    if not iso:
        return ""
    try:
        when = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone()
    return f"{local.day} {local:%b %Y, %H:%M:%S} {local.tzname() or ''}".strip()


def data_sample(record: RunRecord, max_points: int = 2_000) -> tuple[np.ndarray, np.ndarray]:
    """The first ``max_points`` rows of the data the run trained on, regenerated from its
    config (data is seeded, so these are exactly the training rows, not look-alikes).

    Rows are i.i.d., so the first ones are as good a sample as any, and regenerating only
    them costs milliseconds even for a 10,000,000-row run.
    """
    spec = TrainConfig.from_dict(record.config).data_spec()
    spec.validate()
    return next(iter_chunks(spec, chunk_rows=max(1, int(max_points))))


def duration(seconds: float | None) -> str:
    """``3.04`` -> ``3.0 s``, ``75`` -> ``1 min 15 s``, ``3725`` -> ``1 h 2 min``: how long, in
    words a presenter reads aloud (empty for none)."""
    if seconds is None or not np.isfinite(seconds):
        return ""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    return f"{minutes // 60} h {minutes % 60} min"


class EtaClock:
    """Seconds left for a running run, from the pace of its recent progress reports.

    Fed every report (``elapsed_s``, ``fraction``) by the run's own process. The pace is measured
    from the first report on, so the time spent before training (making the data, solving OLS,
    building the model: seconds for 10,000,000 rows) never counts, and over a trailing window
    (the later half of the fit so far, at least :attr:`WINDOW_S`), so slow first batches (tracing,
    input pipeline warm-up) stop counting once the run has settled. Says nothing (``None``) until
    :attr:`SETTLE_S` seconds and :attr:`SETTLE_FRACTION` of the run have passed since the first
    report: earlier guesses swing by minutes.
    """

    SETTLE_S = 5.0
    SETTLE_FRACTION = 0.02
    WINDOW_S = 10.0

    def __init__(self) -> None:
        self._reports: collections.deque[tuple[float, float]] = collections.deque()
        self._first: tuple[float, float] | None = None

    def update(self, elapsed_s: float, fraction: float) -> float | None:
        """Record a report; the seconds left, or ``None`` while it is too early to tell."""
        now = (float(elapsed_s), float(fraction))
        if self._first is None:
            self._first = now
        self._reports.append(now)
        since_first = now[0] - self._first[0]
        window = max(self.WINDOW_S, since_first / 2)
        while len(self._reports) > 2 and self._reports[1][0] <= now[0] - window:
            self._reports.popleft()
        if since_first < self.SETTLE_S or now[1] - self._first[1] < self.SETTLE_FRACTION or now[1] >= 1.0:
            return None
        start = self._reports[0]
        pace = (now[1] - start[1]) / (now[0] - start[0]) if now[0] > start[0] else 0.0
        return (1.0 - now[1]) / pace if pace > 0 else None


def eta_seconds(progress: dict[str, Any]) -> float | None:
    """Seconds left for a running run: the ``eta_s`` its process worked out (:class:`EtaClock`),
    or, in a record written before it did, from its elapsed time and the fraction done (``None``
    until 2% is done)."""
    if "eta_s" in progress:
        eta = progress["eta_s"]
        return float(eta) if eta is not None else None
    fraction, elapsed = float(progress.get("fraction") or 0.0), float(progress.get("elapsed_s") or 0.0)
    if fraction < 0.02 or fraction >= 1.0:
        return None
    return elapsed * (1.0 - fraction) / fraction


def progress_text(progress: dict[str, Any]) -> str:
    """``Epoch 3/100 · loss 4.0544 · 1.2 s elapsed · about 38.4 s left``."""
    eta = eta_seconds(progress)
    left = f" · about {duration(eta)} left" if eta is not None else ""
    return (f"Epoch {progress['epoch']:,}/{progress['epochs']:,} · loss {progress['loss']:,.4g} · "
            f"{duration(progress['elapsed_s'])} elapsed{left}")


def quality_numbers(record: RunRecord) -> str:
    """The gate's numbers in one sentence (empty for records made before the gate)."""
    n = (record.quality or {}).get("numbers") or {}
    if "max_vs_ols" not in n:
        return ""
    return (f"max |learned − OLS| = {n['max_vs_ols']:,.4g} (tolerance {n['param_tolerance']:,.4g}); "
            f"MSE on its data {n['mse']:,.4g} (limit {n['loss_limit']:,.4g}, "
            f"noise σ² = {n['noise_var']:,.4g})")
