"""Read a model server's Prometheus metrics into request rate, errors and latency percentiles.

Both servers expose TF Serving's metrics: ``:tensorflow:serving:request_count{model_name,status}``
(every request) and ``:tensorflow:serving:request_latency{model_name,API,entrypoint}`` (OK requests,
in microseconds; ``API`` ``predict``/``classify``/``regress`` over REST, ``Predict``/... over gRPC,
"" for REST status and metadata, which are left out here).
A :class:`Scrape` is one reading of the counters; :func:`window_rows` turns consecutive readings
into per-interval rates and percentiles, the way Prometheus' ``rate()`` and
``histogram_quantile()`` do. Pure functions over the exposition text (parsed with
prometheus_client's own parser); no network here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

INFERENCE_APIS = ("predict", "classify", "regress")
QUANTILES = (0.5, 0.9, 0.99)


@dataclass(frozen=True)
class Scrape:
    """Cumulative counters of one model at one moment (``time`` in seconds, any clock)."""

    time: float
    requests: dict[str, float] = field(default_factory=dict)
    """Requests answered so far, by status code name (``OK``, ``NOT_FOUND``...)."""
    latency_buckets: tuple[tuple[float, float], ...] = ()
    """Cumulative histogram of inference latency: ``(upper bound in seconds, count)``, ascending."""

    @property
    def total(self) -> float:
        """Every request counted so far, status and metadata calls included (TF Serving counts
        every ``/v1`` request)."""
        return sum(self.requests.values())

    @property
    def inferences_ok(self) -> float:
        """Inference requests (predict, classify, regress over REST or gRPC) answered OK: the
        latency histogram's count, which leaves out status and metadata calls such as a
        dashboard's own polling."""
        return self.latency_buckets[-1][1] if self.latency_buckets else 0.0

    @property
    def answered(self) -> float:
        """Inference requests answered OK plus every failed request: what a traffic chart shows."""
        return self.inferences_ok + self.errors

    @property
    def errors(self) -> float:
        return sum(n for status, n in self.requests.items() if status != "OK")


REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY_BUCKET = ":tensorflow:serving:request_latency_bucket"


def parse_scrape(text: str, model: str, time: float) -> Scrape:
    """The request counts and inference latency histogram of ``model`` in exposition ``text``.
    ``ValueError`` when the text is not Prometheus' format."""
    requests: dict[str, float] = {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels = sample.name, sample.labels
            if labels.get("model_name") != model:
                continue
            if name in (REQUEST_COUNT, REQUEST_COUNT + "_total"):  # the parser may add `_total`
                status = labels.get("status", "OK")
                requests[status] = requests.get(status, 0.0) + sample.value
            elif name == REQUEST_LATENCY_BUCKET:
                if labels.get("API", "").lower() not in INFERENCE_APIS:
                    continue
                bound = float(labels["le"]) * 1e-6  # microseconds
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Scrape(time, requests, tuple(sorted(buckets.items())))


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram, interpolated linearly inside the bucket it
    falls in (Prometheus' ``histogram_quantile``); ``None`` with no observations. A quantile in
    the ``+Inf`` bucket is the highest finite bound."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def window_rows(scrapes: list[Scrape]) -> list[dict[str, Any]]:
    """One row per interval between consecutive scrapes: end time, requests/s (inference requests
    answered OK plus failed requests: see :attr:`Scrape.answered`), errors/s and the latency
    percentiles (ms) of the requests answered in that interval. A counter that went
    down (the server restarted) starts afresh from the newer reading."""
    rows = []
    for before, after in zip(scrapes, scrapes[1:], strict=False):
        seconds = after.time - before.time
        if seconds <= 0:
            continue
        restarted = after.total < before.total
        base = Scrape(before.time) if restarted else before
        old = dict(base.latency_buckets)
        delta = [(bound, count - old.get(bound, 0.0)) for bound, count in after.latency_buckets]
        row: dict[str, Any] = {"time": after.time, "requests/s": (after.answered - base.answered) / seconds,
                               "errors/s": (after.errors - base.errors) / seconds}
        for q in QUANTILES:
            value = histogram_quantile(q, delta)
            row[f"p{round(q * 100)} ms"] = None if value is None else value * 1000
        rows.append(row)
    return rows
