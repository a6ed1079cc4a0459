"""One model's request log: sampling, a bounded queue, and a writer thread that never holds a request up.

`RequestLogger` is made by `request_logs.RequestLogs` for a model whose `logging_config` can be
honoured; the files and records are `log_files.py`'s.

Contract:

- **Sampling first.** `sampled()` draws one random number; a request that is not sampled costs
  nothing more: nothing is serialized, copied or locked. `log(...)` serializes a sampled request's
  request and response (messages, bytes, or zero-argument callables making either, called only
  then) in the caller's thread and queues the record.
- **A bounded queue, one writer thread.** At most `max_queue_records` records and
  `max_queue_bytes` bytes wait; past either the record is dropped at once. The writer appends to the
  current file, starts a new one past `max_file_bytes`, and flushes (fsync) at most
  `flush_interval_s` after a write, so records are on disk within about a second. A file the disk
  refuses (full, read-only) is given up: its unflushed records and the ones in hand are dropped, and
  a new file is tried `retry_after_error_s` later; a slow disk only fills the queue. Either way no
  request waits for the disk or fails because of it.
- **Drops are counted and said once.** Every record's outcome goes to `on_outcome(model,
  status_code, count)` (the metrics' `:tensorflow:serving:request_log_count`): `OK` once flushed,
  `RESOURCE_EXHAUSTED` dropped from a full queue or a full disk, `PERMISSION_DENIED` or `UNKNOWN`
  for other write errors, `INTERNAL` for a request that could not be serialized. The first drop of
  an episode is logged as a warning, the recovery with its count.
- **Nothing lost on shutdown.** `close()` (the server's exit path, SIGTERM included) stops taking
  records, writes everything queued, fsyncs and closes the file, within `timeout`.
- **Size cap.** With `max_total_bytes` > 0, each time a file is started the oldest files of the
  prefix (with their companion files, any writer's) are removed until the prefix fits under it; the
  file being written is never removed.

Thread-safety: `sampled` and `log` from any thread; `flush` and `close` from one thread at a time.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.formats import tfrecord
from pipeline.serving import log_files
from pipeline.serving.log_files import Api, Transport
from pipeline.serving.model_config import LoggingConfig

log = logging.getLogger(__name__)

MiB = 1024 * 1024
Outcome = Callable[[str, str, int], None]
"""Told (model name, canonical status code, record count) for records written (`OK`) or dropped."""
Message = Any
"""A protobuf message, its serialized bytes, None, or a zero-argument callable returning one of these."""
Queued = tuple[bytes, tuple[Any, ...]]
"""A record and what its companion line needs (time, version, label, signature, API, transport,
status, message, latency in ms): the line itself is written by the writer thread."""


@dataclass(frozen=True)
class LogOptions:
    """Server-wide settings of every model's request log."""

    max_file_bytes: int = 64 * MiB
    """A new file is started once the current one is this large (`--request_log_max_file_bytes`)."""
    max_total_bytes: int = 0
    """Oldest files of a prefix removed past this many bytes; 0 keeps everything
    (`--request_log_max_total_bytes`)."""
    max_queue_bytes: int = 64 * MiB
    max_queue_records: int = 10_000
    flush_interval_s: float = 0.5
    retry_after_error_s: float = 1.0


DEFAULT_OPTIONS = LogOptions()


class LogSink(Protocol):
    """Where a logger's records go: one log file and its companion file."""

    path: Path
    size: int

    def write(self, record: bytes, facts: bytes) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


class FileSink:
    """A new TFRecord log file (`pipeline.formats.tfrecord`) and its companion JSON-lines file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._records = tfrecord.RecordWriter(path)
        try:
            self._facts = open(log_files.sidecar_path(path), "ab")  # noqa: SIM115 - closed by close()
        except OSError:
            self._records.close()
            raise

    def write(self, record: bytes, facts: bytes) -> None:
        """Append one record and its companion line (`log_files.facts_line`)."""
        self._records.write(record)
        self._facts.write(facts)
        self.size += tfrecord.HEADER_BYTES + len(record) + tfrecord.FOOTER_BYTES

    def flush(self) -> None:
        self._records.flush()
        self._facts.flush()
        os.fsync(self._facts.fileno())

    def close(self) -> None:
        try:
            self._records.close()
        finally:
            self._facts.close()


def _code_of(error: OSError) -> str:
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "RESOURCE_EXHAUSTED"
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "PERMISSION_DENIED"
    return "UNKNOWN"


class RequestLogger:
    """The request log of one model (see the module docstring)."""

    def __init__(self, model: str, config: LoggingConfig, prefix: str, options: LogOptions = DEFAULT_OPTIONS,
                 *, on_outcome: Outcome | None = None, clock: Callable[[], float] = time.time,
                 draw: Callable[[], float] = random.random,
                 open_sink: Callable[[Path], LogSink] = FileSink) -> None:
        self.model = model
        self.config = config
        self.prefix = prefix
        self.rate = config.sampling_rate
        self.options = options
        self._on_outcome = on_outcome
        self._clock = clock
        self._draw = draw
        self._open_sink = open_sink
        self._cond = threading.Condition()
        self._queue: collections.deque[Queued] = collections.deque()
        self._sampling = log_files.sampling_config(self.rate)
        self._specs: dict[tuple[int | None, str | None, str], bytes] = {}  # serialized ModelSpecs
        self._queued_bytes = 0
        self._closing = False
        self._flush_now = False
        self._busy = False  # the writer holds records taken from the queue
        self._sink: LogSink | None = None
        self._pending = 0  # records written to the current file, not yet flushed
        self._seq = 0
        self._retry_at = 0.0
        self._dropping: str | None = None  # why records are being dropped now (said once)
        self._dropped_in_episode = 0
        self.written = 0
        """Records flushed to disk."""
        self.dropped = 0
        """Records dropped (queue full, disk refused, not serializable, shutdown timed out)."""
        self._thread = threading.Thread(target=self._run, name=f"request-log-{model}", daemon=True)
        self._thread.start()

    # -- request side ------------------------------------------------------------------------------

    def sampled(self) -> bool:
        """Whether this request is logged: true with probability `rate` (never at 0, always at 1)."""
        return self._draw() < self.rate

    def log(self, api: Api, transport: Transport, status: str, latency_s: float, *, request: Message = None,
            response: Message = None, message: str = "", version: int | None = None,
            label: str | None = None, signature: str = "") -> bool:
        """Queue one sampled request; False when it was dropped (queue full, closed, or the request
        could not be serialized). Never raises, never waits for the disk."""
        try:
            now = self._clock()
            spec = self._specs.get((version, label, signature))
            if spec is None:
                if len(self._specs) > 1000:
                    self._specs.clear()
                spec = self._specs[(version, label, signature)] = log_files.model_spec(
                    self.model, version, label, signature)
            metadata = log_files.log_metadata(spec, self._sampling, int(now))
            record = log_files.prediction_log(api, metadata, log_files.as_bytes(_made(request)),
                                              log_files.as_bytes(_made(response)))
        except Exception as error:  # noqa: BLE001 - a request is never failed by its log
            self._drop(1, "INTERNAL", f"a request could not be serialized ({type(error).__name__}: {error})")
            return False
        facts = (now, version, label, signature, api.value, transport.value, status, message,
                 round(latency_s * 1000, 3))
        with self._cond:
            full = (len(self._queue) >= self.options.max_queue_records
                    or self._queued_bytes + len(record) > self.options.max_queue_bytes)
            if not (full or self._closing):
                self._queue.append((record, facts))
                self._queued_bytes += len(record)
                self._cond.notify()
                return True
        reason = "the server is stopping" if self._closing else (
            f"the queue is full ({self.options.max_queue_records} records or "
            f"{self.options.max_queue_bytes} bytes waiting for the disk)")
        self._drop(1, "RESOURCE_EXHAUSTED", reason)
        return False

    # -- lifecycle ---------------------------------------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Write and fsync every record queued so far, now; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._flush_now = True
            self._cond.notify_all()
            while self._queue or self._busy or self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking records, write and fsync what is queued, close the files (within `timeout`;
        records still queued then are counted as dropped and logged)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            with self._cond:
                left = len(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
            if left:
                self._drop(left, "DEADLINE_EXCEEDED", f"the disk did not take them within {timeout:g} s "
                           "of shutdown")
        log.info("Request log of model %s closed: %d records written, %d dropped", self.model, self.written,
                 self.dropped)

    # -- writer thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        last_flush = time.monotonic()
        while True:
            with self._cond:
                while not (self._queue or self._closing or self._flush_now):
                    wait = None
                    if self._pending:
                        wait = last_flush + self.options.flush_interval_s - time.monotonic()
                        if wait <= 0:
                            break
                    self._cond.wait(wait)
                batch = list(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
                self._busy = bool(batch)
                closing, flush_now, self._flush_now = self._closing, self._flush_now, False
            try:
                if batch:
                    self._write(batch, closing)
                due = time.monotonic() - last_flush >= self.options.flush_interval_s
                if self._pending and (closing or flush_now or due):
                    self._flush()
                    last_flush = time.monotonic()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
            if closing:
                with self._cond:
                    if self._queue:
                        continue
                self._finish_file()
                return

    def _write(self, batch: list[Queued], closing: bool) -> None:
        pause = self._retry_at - time.monotonic()
        if pause > 0 and not closing:
            time.sleep(pause)  # the writer thread only: requests keep queueing (or dropping)
        for index, (record, facts) in enumerate(batch):
            try:
                sink = self._current_sink()
                line = log_files.facts_line(sink.size, len(record), facts[0], self.model, *facts[1:])
                sink.write(record, line)
            except OSError as error:
                self._fail(error, len(batch) - index)
                return
            self._pending += 1
            if sink.size >= self.options.max_file_bytes:
                self._finish_file()

    def _current_sink(self) -> LogSink:
        if self._sink is None:
            log_files.prefix_folder(self.prefix).mkdir(parents=True, exist_ok=True)
            while True:
                self._seq += 1
                path = log_files.log_file_path(self.prefix, self._clock(), os.getpid(), self._seq)
                if not path.exists():
                    break
            self._sink = self._open_sink(path)
            self._prune()
        return self._sink

    def _flush(self) -> None:
        """Make the records written so far durable; they count as written once this succeeds."""
        if self._sink is None:
            return
        try:
            self._sink.flush()
        except OSError as error:
            self._fail(error, 0)
            return
        self._settle()

    def _finish_file(self) -> None:
        """Flush and close the current file (rotation, shutdown)."""
        sink, self._sink = self._sink, None
        if sink is None:
            return
        try:
            sink.close()
        except OSError as error:
            self._fail(error, 0)
            return
        self._settle()

    def _settle(self) -> None:
        self._outcome("OK", self._pending)
        self._pending = 0
        self._recovered()

    def _fail(self, error: OSError, unwritten: int) -> None:
        """The disk refused: records not yet flushed (which it may not have) and `unwritten` ones
        are dropped, the file is given up, and a new one is tried `retry_after_error_s` later."""
        sink, self._sink = self._sink, None
        if sink is not None:
            with contextlib.suppress(OSError):
                sink.close()
        self._retry_at = time.monotonic() + self.options.retry_after_error_s
        lost, self._pending = self._pending + unwritten, 0
        self._drop(lost, _code_of(error), f"the log file cannot be written ({error.strerror or error})")

    def _prune(self) -> None:
        """Remove the prefix's oldest files past `max_total_bytes`, never the current one."""
        if self.options.max_total_bytes > 0:
            removed = log_files.prune(self.prefix, self.options.max_total_bytes,
                                      keep=self._sink.path if self._sink is not None else None)
            if removed:
                log.info("Request log of model %s: removed %d oldest file(s) past %d bytes", self.model,
                         len(removed), self.options.max_total_bytes)

    # -- outcomes ----------------------------------------------------------------------------------

    def _outcome(self, code: str, count: int) -> None:
        if not count:
            return
        if code == "OK":
            self.written += count
        else:
            self.dropped += count
        if self._on_outcome is not None:
            try:
                self._on_outcome(self.model, code, count)
            except Exception:  # noqa: BLE001 - metrics never break logging
                log.exception("Request log of model %s: counting failed", self.model)

    def _drop(self, count: int, code: str, reason: str) -> None:
        if not count:
            return
        self._outcome(code, count)
        with self._cond:
            first = self._dropping is None
            if first:
                self._dropping = reason
            self._dropped_in_episode += count
        if first:
            log.warning("Request log of model %s: dropping records: %s. Requests are served as usual; "
                        "dropped records are counted in :tensorflow:serving:request_log_count "
                        "(status_code %s)", self.model, reason, code)

    def _recovered(self) -> None:
        with self._cond:
            if self._dropping is None:
                return
            count, self._dropping, self._dropped_in_episode = self._dropped_in_episode, None, 0
        log.info("Request log of model %s: writing again after %d dropped record(s)", self.model, count)


def _made(value: Message) -> Any:
    return value() if callable(value) else value
