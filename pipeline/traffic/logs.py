"""Read request logs: every logged request with its facts, up to any damage, without TensorFlow.

`read_logs(paths)` finds the log files (a file, a folder, or a `filename_prefix`), reads every
`PredictionLog` record (`pipeline.formats.tfrecord`: CRC-checked; a record failing its checksum is
skipped, a damaged length or a record cut short ends that file there) and joins each with its
line of the companion file by byte offset (`pipeline.serving.log_files`). A file without a
companion (a warm-up file, TF Serving's own logs) still reads: time, model and version come from
`log_metadata`, and transport, status and latency are unknown. `ReadSummary` counts what was read
and what was skipped, per file.

A `Logged` keeps the facts, not the record: `record()` reads it back from its file when needed
(replay, a warm-up file, a download), and the previews of its inputs and outputs are made the first
time they are asked for, so a reader holds little memory however large the logs, and a record with
a companion line is not even parsed until it is shown. `LogReader` reads a growing set of files
incrementally (the dashboard refreshes every few seconds): a file that grew is read from where
reading stopped, and at most the newest `max_bytes` of files are read.

The messages come from `pipeline.tf_protos` and tensors are read by the gRPC front end's TensorProto
reader, so nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import tf_protos
from pipeline.formats import tfrecord
from pipeline.serving import log_files
from pipeline.serving.log_files import RequestFacts
from pipeline.traffic import answers

APIS = ("predict", "classify", "regress", "multi_inference")
BEING_WRITTEN_S = 10.0
"""A file changed this recently whose last record is cut short is being written, not damaged."""


@dataclass
class Logged:
    """One logged request: where its record is, what the companion file (or `log_metadata`) says,
    and (made when first asked for) previews of its inputs and outputs."""

    source: Path
    offset: int
    length: int
    time: datetime | None
    model: str
    version: int | None
    label: str | None
    signature: str
    api: str
    transport: str | None
    """`REST` or `gRPC`; None without a companion record."""
    status: str | None
    """Canonical code name; None without a companion record."""
    message: str
    latency_ms: float | None
    previewed: tuple[str, str] | None = field(default=None, compare=False, repr=False)
    """(inputs, outputs) previews, once made."""

    @property
    def inputs(self) -> str:
        """One short line of what the request sent."""
        return self.previews()[0]

    @property
    def outputs(self) -> str:
        """One short line of what it was answered ("" when no response was logged)."""
        return self.previews()[1]

    def previews(self) -> tuple[str, str]:
        if self.previewed is None:
            try:
                self.previewed = answers.of_log(self.prediction_log(), self.api)
            except (OSError, ValueError) as error:
                self.previewed = (f"(record unreadable: {error})", "")
        return self.previewed

    @property
    def id(self) -> str:
        """Stable while the file exists: `<file name>@<offset>`."""
        return f"{self.source.name}@{self.offset}"

    @property
    def ok(self) -> bool:
        """Answered OK (without a companion record: when a response was logged)."""
        return self.status == "OK" if self.status is not None else self.outputs != ""

    @property
    def target(self) -> str:
        """`version 3`, `label stable`, or `latest`: what answered (or was asked for)."""
        if self.version is not None:
            return f"version {self.version}" + (f" ({self.label})" if self.label else "")
        return f"label {self.label}" if self.label else "latest"

    def record(self) -> bytes:
        """The serialized `PredictionLog`, read back from its file (checksums checked); OSError if
        the file is gone (a size cap removed it) or the record no longer reads."""
        with open(self.source, "rb") as handle:
            handle.seek(self.offset)
            size = tfrecord.HEADER_BYTES + self.length + tfrecord.FOOTER_BYTES
            found = list(tfrecord.read_stream(handle, size, tfrecord.ReadReport()))
        if len(found) != 1:
            raise OSError(f"the record at byte {self.offset} of {self.source} no longer reads")
        return found[0]

    def prediction_log(self) -> Any:
        """The record as a `PredictionLog` message (`pipeline.tf_protos`)."""
        return prediction_log_class().FromString(self.record())


def prediction_log_class() -> type:
    return tf_protos.message_class("tensorflow.serving.PredictionLog")


@dataclass
class FileReport:
    """What reading one file found."""

    path: Path
    read: tfrecord.ReadReport = field(default_factory=tfrecord.ReadReport)
    not_prediction_logs: int = 0
    """Records that are not a `PredictionLog` of the four inference APIs."""
    facts_skipped: int = 0
    """Companion lines that do not parse or match no record."""
    error: str = ""
    """Why the file could not be read at all."""

    @property
    def being_written(self) -> bool:
        """Reading stopped at a last record cut short in a file changed in the last
        `BEING_WRITTEN_S`: a writer is most likely still at it (read again later)."""
        return (self.read.stopped_at is not None and "cut short" in self.read.reason
                and _recently_changed(self.path))

    @property
    def damaged(self) -> bool:
        return bool(self.error or self.read.corrupt or self.not_prediction_logs
                    or (self.read.stopped_at is not None and not self.being_written))

    def describe(self) -> str:
        if self.error:
            return f"{self.path}: not read ({self.error})"
        parts = [f"{self.path}: {self.read.describe()}"]
        if self.not_prediction_logs:
            parts.append(f"{self.not_prediction_logs} not a predict/classify/regress/multi-inference log")
        if self.facts_skipped:
            parts.append(f"{self.facts_skipped} companion line(s) skipped")
        if self.being_written:
            parts.append("changed seconds ago: probably still being written")
        return "; ".join(parts)


@dataclass
class ReadSummary:
    """Every file's report, and totals."""

    files: list[FileReport] = field(default_factory=list)
    left_out_files: int = 0
    """Older files not read: past a reader's `max_bytes`."""
    left_out_bytes: int = 0

    @property
    def records(self) -> int:
        return sum(f.read.records - f.not_prediction_logs for f in self.files)

    @property
    def skipped(self) -> int:
        """Records skipped for a bad checksum or as not a PredictionLog."""
        return sum(f.read.corrupt + f.not_prediction_logs for f in self.files)

    @property
    def damaged(self) -> list[FileReport]:
        return [f for f in self.files if f.damaged]

    def describe(self) -> str:
        """One line: `3 files, 120 requests`, plus what was skipped and where reading stopped."""
        text = f"{len(self.files)} file{'s' * (len(self.files) != 1)}, {self.records} logged requests"
        damaged = self.damaged
        if damaged:
            unread = sum(f.read.unread_bytes for f in damaged if f.read.stopped_at is not None)
            unreadable = sum(bool(f.error) for f in damaged)
            parts = [f"{self.skipped} damaged record(s) skipped"] if self.skipped else []
            parts += [f"{unread} bytes unread after damage"] if unread else []
            parts += [f"{unreadable} file(s) not readable"] if unreadable else []
            text += "; " + ", ".join(parts) + f" in {len(damaged)} file(s)"
        if writing := sum(f.being_written for f in self.files):
            text += f"; {writing} file(s) still being written (their last record not read yet)"
        if self.left_out_files:
            size = self.left_out_bytes / 2**20
            text += f"; {self.left_out_files} older file(s) ({size:,.1f} MiB) not read: the newest files only"
        return text


def _recently_changed(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < BEING_WRITTEN_S
    except OSError:
        return False


def find_log_files(paths: Iterable[Path | str]) -> list[Path]:
    """The log files `paths` name, oldest first within each: a file is itself, a folder every
    request log file under it, anything else a `filename_prefix`. Companion files are not log files."""
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.rglob(f"*{log_files.LOG_SUFFIX}") if p.is_file())
        else:
            found += log_files.log_files(str(item))
    unique = dict.fromkeys(found)
    return list(unique)


def read_file(path: Path, report: FileReport, start: int = 0) -> list[Logged]:
    """The logged requests of one file from byte `start` (where an earlier read stopped)."""
    facts = _facts_by_offset(path, report)
    found: list[Logged] = []
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(start)
            read = tfrecord.ReadReport()
            for data in tfrecord.read_stream(handle, size - start, read):
                offset = handle.tell() - tfrecord.HEADER_BYTES - len(data) - tfrecord.FOOTER_BYTES
                entry = _entry(path, offset, data, facts.pop(offset, None))
                if entry is None:
                    report.not_prediction_logs += 1
                else:
                    found.append(entry)
    except OSError as error:
        report.error = error.strerror or str(error)
        return found
    _merge(report.read, read, start)
    return found


def _merge(total: tfrecord.ReadReport, part: tfrecord.ReadReport, start: int) -> None:
    total.records += part.records
    total.corrupt += part.corrupt
    total.stopped_at = None if part.stopped_at is None else start + part.stopped_at
    total.unread_bytes, total.reason = part.unread_bytes, part.reason


def _facts_by_offset(path: Path, report: FileReport) -> dict[int, RequestFacts]:
    try:
        lines = log_files.sidecar_path(path).read_bytes().splitlines()
    except OSError:
        return {}
    found = {}
    for line in lines:
        facts = RequestFacts.from_line(line)
        if facts is None:
            report.facts_skipped += 1
        else:
            found[facts.offset] = facts
    return found


def _parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def _entry(path: Path, offset: int, data: bytes, facts: RequestFacts | None) -> Logged | None:
    """The entry of one record: from its companion line when it has one (the record is parsed
    only when shown), else from the record's `log_metadata`; None for a record that is not a
    PredictionLog of the four inference APIs."""
    if facts is not None and facts.bytes == len(data) and facts.api in APIS:
        return Logged(path, offset, len(data), _parse_time(facts.time), facts.model, facts.version,
                      facts.label, facts.signature, facts.api, facts.transport, facts.status, facts.message,
                      facts.latency_ms)
    from google.protobuf.message import DecodeError

    try:
        log = prediction_log_class().FromString(data)
    except DecodeError:
        return None
    kind = log.WhichOneof("log_type")
    api = kind[: -len("_log")] if kind else ""
    if api not in APIS:
        return None
    spec = log.log_metadata.model_spec
    request = getattr(log, kind).request
    request_spec = request.tasks[0].model_spec if api == "multi_inference" and request.tasks else \
        getattr(request, "model_spec", None)
    name = spec.name or (request_spec.name if request_spec is not None else "")
    when = datetime.fromtimestamp(log.log_metadata.timestamp_secs, UTC) if log.log_metadata.timestamp_secs \
        else None
    version = spec.version.value if spec.HasField("version") else None
    signature = spec.signature_name or (request_spec.signature_name if request_spec is not None else "")
    return Logged(path, offset, len(data), when, name, version, spec.version_label or None, signature, api,
                  None, None, "", None, answers.of_log(log, api))


def read_logs(paths: Iterable[Path | str], summary: ReadSummary | None = None) -> list[Logged]:
    """Every logged request in the files `paths` name (see `find_log_files`), in file order;
    damage is skipped and counted in `summary`, never raised."""
    summary = summary if summary is not None else ReadSummary()
    found: list[Logged] = []
    for path in find_log_files(paths):
        report = FileReport(path)
        summary.files.append(report)
        found += read_file(path, report)
    return found


def _late_facts(path: Path, entries: list[Logged]) -> list[Logged]:
    facts = _facts_by_offset(path, FileReport(path))
    joined = []
    for entry in entries:
        found = facts.get(entry.offset) if entry.status is None else None
        if found is not None and found.bytes == entry.length:
            when = _parse_time(found.time)
            entry = dataclasses.replace(entry, time=when, model=found.model, version=found.version,
                                        label=found.label, signature=found.signature,
                                        transport=found.transport, status=found.status,
                                        message=found.message, latency_ms=found.latency_ms)
        joined.append(entry)
    return joined


class LogReader:
    """Reads the same files again and again, each only from where it stopped (files are appended
    to; one that shrank or was replaced is read again whole, one that is gone is forgotten)."""

    def __init__(self, max_bytes: int | None = None) -> None:
        """`max_bytes`: read only the newest files (by modification time) up to about this many
        bytes; None reads every file."""
        self.max_bytes = max_bytes
        self._files: dict[Path, tuple[int, int, FileReport, list[Logged]]] = {}  # inode, next offset

    def _newest(self, paths: Iterable[Path | str], summary: ReadSummary
                ) -> list[tuple[Path, os.stat_result]]:
        """The files to read, in their order: all, or the newest up to `max_bytes`."""
        found = []
        for path in find_log_files(paths):
            try:
                found.append((path, path.stat()))
            except OSError:
                continue
        if self.max_bytes is None:
            return found
        kept: set[Path] = set()
        total = 0
        for path, stat in sorted(found, key=lambda item: item[1].st_mtime, reverse=True):
            if kept and total + stat.st_size > self.max_bytes:
                summary.left_out_files += 1
                summary.left_out_bytes += stat.st_size
                continue
            kept.add(path)
            total += stat.st_size
        return [(path, stat) for path, stat in found if path in kept]

    def read(self, paths: Iterable[Path | str]) -> tuple[list[Logged], ReadSummary]:
        summary, found, seen = ReadSummary(), [], set()
        for path, stat in self._newest(paths, summary):
            seen.add(path)
            inode, start, report, entries = self._files.get(path, (stat.st_ino, 0, None, []))
            if report is None or inode != stat.st_ino or stat.st_size < start:
                report, entries, start = FileReport(path), [], 0
            if stat.st_size > start or not entries:
                entries = entries + read_file(path, report, start)
                start = report.read.stopped_at if report.read.stopped_at is not None else stat.st_size
            if any(e.status is None for e in entries) and log_files.sidecar_path(path).exists():
                entries = _late_facts(path, entries)  # the companion line reached the disk after the record
            self._files[path] = (stat.st_ino, start, report, entries)
            summary.files.append(report)
            found += entries
        for gone in set(self._files) - seen:
            del self._files[gone]
        return found, summary
