"""Where a request's time goes inside the server, read from two scrapes of its Prometheus metrics.

A load test scrapes ``/monitoring/prometheus/metrics`` when a level's measured window opens and
when it closes; :func:`breakdown` turns the two readings into one row per **stage** of a request
(whole request, parse, wait for a worker, batch queue, model run, response write, batch size
formed) with the count, mean, p50 and p99 of what the server observed in that window. A stage is
looked up by TF Serving's own metric names first (``:tensorflow:serving:request_latency``,
``...:runtime_latency``, ``...:batching_session:queuing_latency`` in microseconds, ...), then by this
project's server's names for what TF Serving does not measure (``tensorflow_serving_request_parse_latency``,
``tensorflow_serving_worker_queuing_latency``, ``tensorflow_serving_response_write_latency``), then
its older names, then by keyword among the other time histograms the server exposes, so a server
that adds a stage under a new name is shown without a change here. Parse, worker queue, model run
and response write are parts of the whole request (the batch queue is inside the model run, as TF
Serving counts it). A stage the server does not expose is listed as
missing, never guessed, and time histograms that match no stage are shown as they are (by name).
Pure functions over the exposition text (prometheus_client's parser); no network here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from pipeline.client.server_metrics import INFERENCE_APIS, histogram_quantile

MODEL_LABELS = ("model_name", "model")
MICROS, SECONDS, ROWS = 1e-6, 1.0, None
"""Scales to seconds of a metric's unit; ``ROWS`` for sizes (no time unit)."""
NOT_STAGES = ("warmup", "load", "example_count")
"""Time histograms that are not part of a request's path (loading versions, warm-up replays)."""


@dataclass(frozen=True)
class Stage:
    """One part of a request's time, and the metric names that measure it, best first."""

    key: str
    title: str
    names: tuple[tuple[str, float | None], ...]
    """``(family name, scale to seconds)``; TF Serving's names first."""
    keywords: tuple[str, ...] = ()
    """Substrings that find the stage among other time histograms (a server's own names)."""

    @property
    def is_size(self) -> bool:
        return bool(self.names) and self.names[0][1] is ROWS


STAGES: tuple[Stage, ...] = (
    Stage("request", "whole request in the server",
          ((":tensorflow:serving:request_latency", MICROS),
           ("tensorflow_serving_request_latency_seconds", SECONDS))),
    Stage("parse", "request parse", (("tensorflow_serving_request_parse_latency", MICROS),),
          ("parse", "decode", "deserializ")),
    Stage("queue", "queued for a worker", (("tensorflow_serving_worker_queuing_latency", MICROS),),
          ("queu", "wait")),
    Stage("batch_queue", "queued for a batch (inside model run)",
          ((":tensorflow:serving:batching_session:queuing_latency", MICROS),
           (":tensorflow:serving:batching:queuing_latency", MICROS))),
    Stage("run", "model run", ((":tensorflow:serving:runtime_latency", MICROS),),
          ("runtime", "run_latency", "execut", "model_latency", "compute")),
    Stage("write", "response write", (("tensorflow_serving_response_write_latency", MICROS),),
          ("write", "serializ", "encode", "format", "response")),
    Stage("batch_size", "batch size formed (rows per model call)",
          ((":tensorflow:serving:batching_session:input_batch_size", ROWS),
           (":tensorflow:serving:batching:input_batch_size", ROWS), ("tensorflow_serving_batch_size", ROWS)),
          ("batch_size",)),
)


@dataclass(frozen=True)
class Histogram:
    """One histogram family for one model, summed over its other labels: cumulative buckets
    ``(upper bound, count)`` ascending, the sum and the count, in the metric's own unit."""

    name: str
    per_model: bool
    buckets: tuple[tuple[float, float], ...] = ()
    total: float = 0.0
    count: float = 0.0

    def minus(self, before: Histogram | None) -> Histogram:
        """What was observed since ``before`` (all of it if the counters went down: a restart)."""
        if before is None or before.count > self.count:
            return self
        old = dict(before.buckets)
        return Histogram(self.name, self.per_model,
                         tuple((bound, count - old.get(bound, 0.0)) for bound, count in self.buckets),
                         self.total - before.total, self.count - before.count)


@dataclass(frozen=True)
class StageReading:
    """One stage over one window: observations, and mean/p50/p99 in ms (rows for sizes)."""

    key: str
    title: str
    metric: str
    unit: str
    """``ms`` or ``rows``."""
    count: float
    mean: float | None
    p50: float | None
    p99: float | None
    per_model: bool = True
    """False when the server counts it for all models together (TF Serving's batch queue)."""


@dataclass(frozen=True)
class Breakdown:
    """The server's own account of one window: stages found, stages missing, other time series."""

    stages: list[StageReading] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Titles of stages the server exposes no series for."""
    other: list[StageReading] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Breakdown | None:
        if not isinstance(data, dict):
            return None
        return cls([StageReading(**s) for s in data.get("stages", [])], list(data.get("missing", [])),
                   [StageReading(**s) for s in data.get("other", [])])


def _inference(labels: dict[str, str]) -> bool:
    api = labels.get("API")
    return api is None or api.lower() in INFERENCE_APIS


def read_histograms(text: str, model: str) -> dict[str, Histogram]:
    """Every histogram family in exposition ``text`` for ``model``: samples labelled with another
    model are left out, and so are non-inference APIs (status, metadata); families without a
    model label are kept whole. ``ValueError`` when the text is not Prometheus' format."""
    buckets: dict[str, dict[float, float]] = {}
    totals: dict[str, list[float]] = {}
    per_model: dict[str, bool] = {}
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for sample in family.samples:
            labels = sample.labels
            owner = next((labels[k] for k in MODEL_LABELS if k in labels), None)
            if (owner is not None and owner != model) or not _inference(labels):
                continue
            per_model[family.name] = per_model.get(family.name, False) or owner is not None
            sums = totals.setdefault(family.name, [0.0, 0.0])
            if sample.name.endswith("_bucket"):
                bound = float(labels["le"])
                found = buckets.setdefault(family.name, {})
                found[bound] = found.get(bound, 0.0) + sample.value
            elif sample.name.endswith("_sum"):
                sums[0] += sample.value
            elif sample.name.endswith("_count"):
                sums[1] += sample.value
    return {name: Histogram(name, per_model[name], tuple(sorted(buckets.get(name, {}).items())),
                            *totals[name]) for name in totals}


def _time_scale(name: str) -> float | None:
    """The unit of a histogram found by its name: a time (scale to seconds), or None for a size
    or anything that is not a time."""
    lowered = name.lower()
    if "size" in lowered:
        return None
    if lowered.endswith("_seconds") or "seconds" in lowered:
        return SECONDS
    if lowered.endswith("_ms") or "millis" in lowered:
        return 1e-3
    if "latency" in lowered or lowered.endswith(("_us", "_micros", "_microseconds")):
        return MICROS  # TF Serving counts times in microseconds
    return None


def _reading(stage_key: str, title: str, delta: Histogram, scale: float | None) -> StageReading:
    factor = 1.0 if scale is None else scale * 1000.0
    quantiles = [histogram_quantile(q, list(delta.buckets)) for q in (0.5, 0.99)]
    p50, p99 = (None if v is None or not math.isfinite(v) else v * factor for v in quantiles)
    mean = delta.total / delta.count * factor if delta.count > 0 else None
    return StageReading(stage_key, title, delta.name, "rows" if scale is None else "ms", delta.count, mean,
                        p50, p99, delta.per_model)


def _claim(stage: Stage, found: dict[str, Histogram], taken: set[str]) -> tuple[str, float | None] | None:
    for name, scale in stage.names:
        if name in found:
            return name, scale
    for name in sorted(found):
        lowered = name.lower()
        if name in taken or any(word in lowered for word in NOT_STAGES):
            continue
        scale = _time_scale(name)
        fits = "size" in lowered if stage.is_size else scale is not None
        if fits and any(word in lowered for word in stage.keywords):
            return name, scale
    return None


def breakdown(before: str, after: str, model: str) -> Breakdown:
    """The stages of ``model``'s requests observed between two scrapes (exposition texts).
    ``ValueError`` when either text is not Prometheus' format."""
    old, new = read_histograms(before, model), read_histograms(after, model)
    taken = {name for stage in STAGES for name, _ in stage.names}
    result = Breakdown()
    for stage in STAGES:
        claimed = _claim(stage, new, taken)
        if claimed is None:
            result.missing.append(stage.title)
            continue
        name, scale = claimed
        taken.add(name)
        result.stages.append(_reading(stage.key, stage.title, new[name].minus(old.get(name)), scale))
    for name in sorted(set(new) - taken):
        scale = _time_scale(name)
        if scale is None or any(word in name.lower() for word in NOT_STAGES):
            continue
        delta = new[name].minus(old.get(name))
        if delta.count > 0:
            result.other.append(_reading(name, name, delta, scale))
    return result
