"""Prometheus metrics of one server, under TF Serving's own names, types, labels and units.

TF Serving names its metrics after TensorFlow's monitoring names with every character outside
`[a-zA-Z0-9_]` turned into `:` (`/tensorflow/serving/request_count` is
`:tensorflow:serving:request_count`), writes counters without a `_total` suffix, times in
microseconds, and histogram buckets as `monitoring::Buckets::Exponential(scale, growth, count)`.
prometheus_client renames counters to `..._total` in the text format, so the exposition is written
here (`Registry.render`), in the format of upstream's `prometheus_exporter.cc`: `# TYPE` lines,
`NAME_bucket{labels,le="..."}` with bounds printed as `%.6g`, `NAME_sum`, `NAME_count`.

TF Serving's metrics (docs/serving.md has the table with what counts):
- `:tensorflow:serving:request_count{model_name,status}`: every REST `/v1` request (`model_name`
  from the URL, "" when it names none) and every gRPC Predict/Classify/Regress, by canonical code.
- `:tensorflow:serving:request_latency{model_name,API,entrypoint}`: OK requests only, µs, from
  request to answer; REST `API` is the URL's verb (`predict`, ...; "" for status and metadata),
  gRPC `Predict`, `Classify`, `Regress`; `entrypoint` `REST` or `GRPC`.
- `:tensorflow:serving:runtime_latency{model_name,API,runtime}`: the model call of OK requests, µs
  (`API` `Predict`/`Classify`/`Regress`, `runtime` `TF1`; with batching it includes the queue).
- `:tensorflow:serving:request_example_counts{model}` and `..._example_count_total{model}`:
  tf.Examples per OK classify/regress/multi-inference request.
- `:tensorflow:serving:model_warmup_latency{model_path,status}`: µs per version warm-up replay
  (only when the version has a warm-up file); `status` `OK` or `CODE: message`.
- `:tensorflow:cc:saved_model:load_attempt_count{model_path,status}` (`success`/`fail`) and
  `:tensorflow:cc:saved_model:load_latency{model_path}` (µs of successful loads, a counter).
- `:tensorflow:serving:request_log_count{model_name,status_code}`: records of the request logs
  (`logging_config`): `OK` once on disk, another code for each record dropped (`RESOURCE_EXHAUSTED`
  for a full queue or disk).
- with `--enable_batching`: `:tensorflow:serving:batching_session:queuing_latency{thread_pool_name}`
  (µs each request waited for its batch) and, as histograms here (TF Serving keeps them as
  percentile samplers its exporter cannot show), `..:input_batch_size`, `..:processed_batch_size`
  (rows of each model call before and after padding) and `..:padding_size{execution_batch_size}`.

Ours (no TF Serving counterpart): where an OK inference request's time went, µs with
`request_latency`'s buckets and labels (`model_name`, `API`, `entrypoint`, recorded for the same
requests): `tensorflow_serving_request_parse_latency` (wire request to arrays),
`tensorflow_serving_worker_queuing_latency` (admitted, waiting for a worker of its front end; a
batch queue's wait is in `runtime_latency`, as upstream) and
`tensorflow_serving_response_write_latency` (arrays to the wire answer);
`tensorflow_serving_batch_requests{model_name}` (requests merged
per call), `tensorflow_serving_batch_fallback_total{model_name}`,
`tensorflow_serving_dropped_request_count_total{model_name,reason}`, `tensorflow_serving_batching_enabled`
and the scrape-time gauges `tensorflow_serving_pending_requests`,
`tensorflow_serving_batch_running_calls`, `tensorflow_serving_batch_queued_tasks`.

Model names that are not configured become label values only up to `MAX_UNKNOWN_MODEL_NAMES`
distinct ones (then ""), so random names in URLs cannot grow the label set without bound.
Everything is thread-safe.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MAX_UNKNOWN_MODEL_NAMES = 100


def exponential_buckets(scale: float, growth: float, count: int) -> tuple[float, ...]:
    """TensorFlow's `monitoring::Buckets::Exponential`: `count` finite upper bounds, then +Inf."""
    return tuple(scale * growth**i for i in range(count))


LATENCY_BUCKETS = exponential_buckets(10, 1.8, 33)         # µs, up to ~20 minutes
EXAMPLE_COUNT_BUCKETS = exponential_buckets(1, 2, 15)       # 1 .. 16384 examples
QUEUING_BUCKETS = exponential_buckets(100, 1.2, 52)         # µs, up to ~1 s
BATCH_SIZE_BUCKETS = exponential_buckets(1, 2, 14)          # 1 .. 8192 rows
RUNTIME = "TF1"  # upstream's runtime label for session-based servables
DEFAULT_THREAD_POOL = "model_server_batch_threads"  # tensorflow_model_server's, without a parameters file


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


class _Family:
    """One metric with its label names; values per tuple of label values, under one lock."""

    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.labels = tuple(labels)
        self._lock = threading.Lock()

    def _label_text(self, values: tuple[str, ...], extra: str = "") -> str:
        parts = [f'{key}="{_escape(value)}"' for key, value in zip(self.labels, values, strict=True)]
        if extra:
            parts.append(extra)
        return "{" + ",".join(parts) + "}" if parts else ""

    def lines(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}", *self._samples()]

    def _samples(self) -> list[str]:
        raise NotImplementedError


class Counter(_Family):
    kind = "counter"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, labels)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, *values: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[values] = self._values.get(values, 0.0) + amount

    def value(self, *values: str) -> float:
        return self._values.get(values, 0.0)

    def _samples(self) -> list[str]:
        with self._lock:
            items = list(self._values.items())
        return [f"{self.name}{self._label_text(key)} {_number(value)}" for key, value in items]


class Gauge(_Family):
    kind = "gauge"

    def __init__(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        super().__init__(name, help_text)
        self._read = read

    def _samples(self) -> list[str]:
        return [f"{self.name} {_number(self._read())}"]


class Histogram(_Family):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str], buckets: Sequence[float]) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(buckets)
        self._values: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, *values: str) -> None:
        index = bisect.bisect_left(self.buckets, value)  # upper bounds are inclusive
        with self._lock:
            entry = self._values.get(values)
            if entry is None:
                entry = self._values[values] = ([0] * (len(self.buckets) + 1), [0.0])
            entry[0][index] += 1
            entry[1][0] += value

    def _samples(self) -> list[str]:
        with self._lock:
            items = [(key, list(counts), total[0]) for key, (counts, total) in self._values.items()]
        lines = []
        for key, counts, total in items:
            cumulative = 0
            for bound, count in zip((*self.buckets, None), counts, strict=True):
                cumulative += count
                le = 'le="+Inf"' if bound is None else f'le="{bound:.6g}"'
                lines.append(f"{self.name}_bucket{self._label_text(key, le)} {cumulative}")
            lines.append(f"{self.name}_sum{self._label_text(key)} {_number(total)}")
            lines.append(f"{self.name}_count{self._label_text(key)} {cumulative}")
        return lines


class Registry:
    """The families of one server, rendered in registration order."""

    def __init__(self) -> None:
        self._families: list[_Family] = []

    def add(self, family: _Family) -> _Family:
        self._families.append(family)
        return family

    def render(self) -> bytes:
        lines = [line for family in self._families for line in family.lines()]
        return ("\n".join(lines) + "\n").encode()


def _micros(seconds: float) -> int:
    return max(0, round(seconds * 1e6))


class ServerMetrics:
    """The metrics of one server process (or one app in tests)."""

    content_type = CONTENT_TYPE

    def __init__(self, batching: bool = False, known_model: Callable[[str], bool] | None = None,
                 thread_pool_name: str = DEFAULT_THREAD_POOL) -> None:
        """`known_model` says whether a name is configured (default: every name is)."""
        self.registry = Registry()
        self._known = known_model or (lambda name: True)
        self._unknown: set[str] = set()
        self._unknown_lock = threading.Lock()
        self.thread_pool_name = thread_pool_name
        add = self.registry.add
        self.request_count = add(Counter(":tensorflow:serving:request_count", "The total number of requests.",
                                         ["model_name", "status"]))
        self.request_latency = add(Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ["model_name", "API", "entrypoint"], LATENCY_BUCKETS))
        stage_labels = ["model_name", "API", "entrypoint"]
        self.parse_latency = add(Histogram(
            "tensorflow_serving_request_parse_latency",
            "Distribution of wall time (in microseconds) for parsing a request into tensors.",
            stage_labels, LATENCY_BUCKETS))
        self.worker_queuing_latency = add(Histogram(
            "tensorflow_serving_worker_queuing_latency",
            "Distribution of wall time (in microseconds) an admitted request waited for a worker thread.",
            stage_labels, LATENCY_BUCKETS))
        self.write_latency = add(Histogram(
            "tensorflow_serving_response_write_latency",
            "Distribution of wall time (in microseconds) for writing a response from tensors.",
            stage_labels, LATENCY_BUCKETS))
        self.runtime_latency = add(Histogram(
            ":tensorflow:serving:runtime_latency",
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ["model_name", "API", "runtime"], LATENCY_BUCKETS))
        self.example_counts = add(Histogram(
            ":tensorflow:serving:request_example_counts", "The number of tensorflow.Examples per request.",
            ["model"], EXAMPLE_COUNT_BUCKETS))
        self.example_count_total = add(Counter(
            ":tensorflow:serving:request_example_count_total", "The total number of tensorflow.Examples.",
            ["model"]))
        self.warmup_latency = add(Histogram(
            ":tensorflow:serving:model_warmup_latency",
            "Distribution of wall time (in microseconds) for warming up the model.",
            ["model_path", "status"], LATENCY_BUCKETS))
        self.load_attempt_count = add(Counter(
            ":tensorflow:cc:saved_model:load_attempt_count",
            "The number of times a SavedModel was successfully loaded.", ["model_path", "status"]))
        self.load_latency = add(Counter(
            ":tensorflow:cc:saved_model:load_latency",
            "Latency in microseconds for SavedModels that were successfully loaded.", ["model_path"]))
        self.request_log_count = add(Counter(
            ":tensorflow:serving:request_log_count",
            "The total number of requests logged from the model server sliced down by model_name and "
            "status code.", ["model_name", "status_code"]))
        if batching:
            self.queuing_latency = add(Histogram(
                ":tensorflow:serving:batching_session:queuing_latency",
                "Distribution of wall time spent (in microseconds) in queuing", ["thread_pool_name"],
                QUEUING_BUCKETS))
            self.input_batch_size = add(Histogram(
                ":tensorflow:serving:batching_session:input_batch_size",
                "Tracks the batching input size distribution on processed batches.", [], BATCH_SIZE_BUCKETS))
            self.processed_batch_size = add(Histogram(
                ":tensorflow:serving:batching_session:processed_batch_size",
                "Tracks the batch size distribution on processed batches.", [], BATCH_SIZE_BUCKETS))
            self.padding_size = add(Histogram(
                ":tensorflow:serving:batching_session:padding_size",
                "Tracks the padding size distribution on batches.", ["execution_batch_size"],
                BATCH_SIZE_BUCKETS))
        self.batch_requests = add(Histogram(
            "tensorflow_serving_batch_requests", "Requests merged into one batched model call.",
            ["model_name"], BATCH_SIZE_BUCKETS))
        self.batch_fallback = add(Counter(
            "tensorflow_serving_batch_fallback_total",
            "Merged model calls that failed and ran request by request.", ["model_name"]))
        self.dropped = add(Counter(
            "tensorflow_serving_dropped_request_count_total", "Requests answered without running the model.",
            ["model_name", "reason"]))
        add(Gauge("tensorflow_serving_batching_enabled", "1 if --enable_batching merges requests, else 0.",
                  lambda: 1.0 if batching else 0.0))

    def model_label(self, model_name: str | None) -> str:
        """`model_name` as a label value: configured names, and up to `MAX_UNKNOWN_MODEL_NAMES`
        others; "" for none or past that bound."""
        if not model_name or self._known(model_name):
            return model_name or ""
        with self._unknown_lock:
            if model_name in self._unknown:
                return model_name
            if len(self._unknown) < MAX_UNKNOWN_MODEL_NAMES:
                self._unknown.add(model_name)
                return model_name
        return ""

    def watch(self, pending: Callable[[], float], running_calls: Callable[[], float] | None = None,
              queued_tasks: Callable[[], float] | None = None) -> None:
        """Export the server's live load, read when scraped: requests pending, and the batch
        scheduler's running calls and queued tasks when batching is on."""
        self.registry.add(Gauge("tensorflow_serving_pending_requests",
                                "Model requests admitted and not yet answered.", pending))
        for name, text, read in (
                ("tensorflow_serving_batch_running_calls", "Batched model calls running now.", running_calls),
                ("tensorflow_serving_batch_queued_tasks", "Requests waiting in a batch not yet started.",
                 queued_tasks)):
            if read is not None:
                self.registry.add(Gauge(name, text, read))

    def record_request(self, model_name: str | None, api: str, entrypoint: str, status: str,
                       seconds: float) -> None:
        """One answered request: counted by status; its latency recorded if OK."""
        label = self.model_label(model_name)
        self.request_count.inc(label, status)
        if status == "OK":
            self.request_latency.observe(_micros(seconds), label, api, entrypoint)

    def record_stages(self, model_name: str | None, api: str, entrypoint: str, queued: float,
                      parse: float, write: float) -> None:
        """Where an OK inference request's time went, in seconds: its wait for a worker, its parse
        (wire request to arrays) and its response write (arrays to the wire answer); `api` and
        `entrypoint` as its `record_request`."""
        label = self.model_label(model_name)
        self.worker_queuing_latency.observe(_micros(queued), label, api, entrypoint)
        self.parse_latency.observe(_micros(parse), label, api, entrypoint)
        self.write_latency.observe(_micros(write), label, api, entrypoint)

    def record_runtime(self, model_name: str, api: str, seconds: float) -> None:
        """The model call of an OK request took `seconds`."""
        self.runtime_latency.observe(_micros(seconds), self.model_label(model_name), api, RUNTIME)

    def record_examples(self, model_name: str, count: int) -> None:
        """An OK classify/regress/multi-inference request carried `count` tf.Examples."""
        label = self.model_label(model_name)
        self.example_counts.observe(count, label)
        self.example_count_total.inc(label, amount=count)

    def record_saved_model_load(self, model_path: str, ok: bool, seconds: float) -> None:
        """One attempt to load the SavedModel at `model_path` (a version directory)."""
        self.load_attempt_count.inc(model_path, "success" if ok else "fail")
        if ok:
            self.load_latency.inc(model_path, amount=_micros(seconds))

    def record_warmup(self, model_path: str, status: str, seconds: float) -> None:
        """The warm-up replay of `model_path` ended with `status` (`OK` or `CODE: message`)."""
        self.warmup_latency.observe(_micros(seconds), model_path, status)

    def record_request_log(self, model_name: str, status_code: str, count: int = 1) -> None:
        """`count` records of `model_name`'s request log were written (`OK`) or dropped (another
        canonical code): a `request_logs.Outcome`."""
        self.request_log_count.inc(self.model_label(model_name), status_code, amount=count)

    def record_batch(self, model_name: str, requests: int, rows: int, padded_rows: int,
                     waits: Sequence[float]) -> None:
        """A BatchListener for the batch scheduler: one model call of a batch ran."""
        if hasattr(self, "input_batch_size"):
            self.input_batch_size.observe(rows)
            self.processed_batch_size.observe(padded_rows)
            self.padding_size.observe(padded_rows - rows, str(padded_rows))
            for wait in waits:
                self.queuing_latency.observe(_micros(wait), self.thread_pool_name)
        self.batch_requests.observe(requests, self.model_label(model_name))

    def record_batch_fallback(self, model_name: str) -> None:
        """A merged call of `model_name` failed and its requests ran one by one."""
        self.batch_fallback.inc(self.model_label(model_name))

    def record_dropped(self, model_name: str, reason: str) -> None:
        """A request for `model_name` was answered without model work (`overloaded`/`deadline_exceeded`)."""
        self.dropped.inc(self.model_label(model_name), reason)

    def record_deadline_drop(self, model_name: str) -> None:
        """A BatchListeners.on_drop: a queued request's deadline passed before its batch ran."""
        self.record_dropped(model_name, "deadline_exceeded")

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric."""
        return self.registry.render()
