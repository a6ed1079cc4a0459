"""Prometheus metrics of one server, exported at /monitoring/prometheus/metrics when enabled.

TF Serving names its metrics after TensorFlow's monitoring names with non-alphanumerics turned into
`:` (e.g. `:tensorflow:serving:request_count`). prometheus_client accepts neither a leading colon
nor (by convention) colons in direct instrumentation, so the same metrics are named with `_`:

- `tensorflow_serving_request_count_total{model_name, status}`
  (TF Serving: `:tensorflow:serving:request_count`)
- `tensorflow_serving_request_latency_seconds{model_name, API, entrypoint}`, a histogram
  (TF Serving: `:tensorflow:serving:request_latency`, in microseconds)
- `tensorflow_serving_model_load_count_total{model_name, status}` with status `OK` or `ERROR`
  (TF Serving: `:tensorflow:cc:saved_model:load_attempt_count`)
- `tensorflow_serving_model_last_load_timestamp_seconds{model_name}` (no TF Serving counterpart)
- with `--enable_batching`, per merged model call: `tensorflow_serving_batch_size{model_name}`, a
  histogram of the rows before padding (TF Serving:
  `:tensorflow:serving:batching_session:input_batch_size`), and
  `tensorflow_serving_batch_requests{model_name}`, a histogram of the requests merged (ours)
- `tensorflow_serving_batch_fallback_total{model_name}`: merged calls that failed and were run
  request by request (ours; each is also a warning in the log)
- `tensorflow_serving_warmup_failure_count_total{model_name}`: warm-up requests that failed (ours;
  the version then fails to load, as in TF Serving, and the log says why)
- `tensorflow_serving_dropped_request_count_total{model_name, reason}`: requests answered without
  running the model, `reason` `overloaded` (503, past `--max_pending_requests`) or
  `deadline_exceeded` (their deadline passed while they waited) (ours)
- `tensorflow_serving_batching_enabled`: 1 with `--enable_batching`, else 0 (ours)
- gauges read at scrape time (ours): `tensorflow_serving_pending_requests` (admitted, not yet
  answered; see `--max_pending_requests`), and with batching `tensorflow_serving_batch_running_calls`
  and `tensorflow_serving_batch_queued_tasks`; tests poll them instead of sleeping

`status` is a canonical code name (`OK`, `NOT_FOUND`, ...); `API` is `predict`, `classify`,
`regress`, `metadata` or `status`; `entrypoint` is always `REST`. Latency is in seconds. Only
configured model names become label values, so random names in URLs cannot grow the label set.
Each `ServerMetrics` has its own CollectorRegistry; thread-safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    """The metrics of one server process (or one app in tests)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, batching: bool = False) -> None:
        self.registry = CollectorRegistry()
        self.request_count = Counter(
            "tensorflow_serving_request_count", "Requests by model and final status code.",
            ["model_name", "status"], registry=self.registry)
        self.request_latency = Histogram(
            "tensorflow_serving_request_latency_seconds", "Request handling time by model and API.",
            ["model_name", "API", "entrypoint"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.load_count = Counter(
            "tensorflow_serving_model_load_count", "Version load attempts by model and outcome.",
            ["model_name", "status"], registry=self.registry)
        self.last_load_time = Gauge(
            "tensorflow_serving_model_last_load_timestamp_seconds",
            "Unix time of the last successful version load.", ["model_name"], registry=self.registry)
        self.batch_size = Histogram(
            "tensorflow_serving_batch_size", "Rows per batched model call (before padding).",
            ["model_name"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram(
            "tensorflow_serving_batch_requests", "Requests merged into one batched model call.",
            ["model_name"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_fallback = Counter(
            "tensorflow_serving_batch_fallback", "Merged model calls that failed and ran request by request.",
            ["model_name"], registry=self.registry)
        self.warmup_failures = Counter(
            "tensorflow_serving_warmup_failure_count",
            "Warm-up requests that failed (the version then fails to load).",
            ["model_name"], registry=self.registry)
        self.dropped = Counter(
            "tensorflow_serving_dropped_request_count", "Requests answered without running the model.",
            ["model_name", "reason"], registry=self.registry)
        Gauge("tensorflow_serving_batching_enabled", "1 if --enable_batching merges requests, else 0.",
              registry=self.registry).set(1 if batching else 0)

    def watch(self, pending: Callable[[], float], running_calls: Callable[[], float] | None = None,
              queued_tasks: Callable[[], float] | None = None) -> None:
        """Export the server's live load, read when scraped: requests pending, and the batch
        scheduler's running calls and queued tasks when batching is on."""
        Gauge("tensorflow_serving_pending_requests", "Model requests admitted and not yet answered.",
              registry=self.registry).set_function(pending)
        for name, text, read in (
                ("tensorflow_serving_batch_running_calls", "Batched model calls running now.", running_calls),
                ("tensorflow_serving_batch_queued_tasks", "Requests waiting in a batch not yet started.",
                 queued_tasks)):
            if read is not None:
                Gauge(name, text, registry=self.registry).set_function(read)

    def record_request(self, model_name: str, api: str, status: str, seconds: float) -> None:
        """Count one answered request (predict/classify/regress also count in request_count)."""
        if api in ("predict", "classify", "regress"):
            self.request_count.labels(model_name, status).inc()
        self.request_latency.labels(model_name, api, "REST").observe(seconds)

    def record_load(self, model_name: str, version: int, ok: bool) -> None:
        """A LoadListener for the manager: one load attempt of `version` ended."""
        self.load_count.labels(model_name, "OK" if ok else "ERROR").inc()
        if ok:
            self.last_load_time.labels(model_name).set(time.time())

    def record_batch(self, model_name: str, requests: int, rows: int) -> None:
        """A BatchListener for the batch scheduler: one merged model call ran."""
        self.batch_size.labels(model_name).observe(rows)
        self.batch_requests.labels(model_name).observe(requests)

    def record_batch_fallback(self, model_name: str) -> None:
        """A merged call of `model_name` failed and its requests ran one by one."""
        self.batch_fallback.labels(model_name).inc()

    def record_warmup_failure(self, model_name: str) -> None:
        """A warm-up call of a signature of `model_name` failed."""
        self.warmup_failures.labels(model_name).inc()

    def record_dropped(self, model_name: str, reason: str) -> None:
        """A request for `model_name` was answered without model work (`overloaded`/`deadline_exceeded`)."""
        self.dropped.labels(model_name, reason).inc()

    def record_deadline_drop(self, model_name: str) -> None:
        """A BatchListeners.on_drop: a queued request's deadline passed before its batch ran."""
        self.record_dropped(model_name, "deadline_exceeded")

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return generate_latest(self.registry)
