"""The request log on disk: file names, the `PredictionLog` record, and its companion record.

A model whose `logging_config` names `log_collector_config { type: "file" filename_prefix: "P" }`
gets files whose names start with `P`, written by `request_log.py` and read by `pipeline.traffic`:

    P.20250102T030405Z-4242-0001.tfrecord        TFRecord of tensorflow.serving.PredictionLog
    P.20250102T030405Z-4242-0001.requests.jsonl  one JSON line per record of the file above

(`P/` ending in a slash puts the files inside that folder without the dot.) The stamp is the UTC
second the file was opened, then the writing process's pid and its file number, so names sort in
writing order and two servers sharing a prefix never share a file.

**The TFRecord file stands alone.** Each record is a `PredictionLog` (`predict_log`,
`classify_log`, `regress_log` or `multi_inference_log` with the request and the response, and
`log_metadata` with the model spec that answered, the sampling config and `timestamp_secs`): the
record type of a warm-up file, so TF Serving, TensorFlow and `pipeline.traffic` read it without the
companion file, and selected records become a version's `assets.extra/tf_serving_warmup_requests`.

**The companion file** (`.requests.jsonl`) adds what a `PredictionLog` has no field for: for each
record, `offset` (where the record starts in the TFRecord file: the join key, so a record lost to
damage on either side never shifts the others), `bytes` (its length), `time` (UTC, microseconds),
`model`, `version` (that answered; null if none), `label` (asked for), `signature`, `api`,
`transport` (`REST` or `gRPC`), `status` (canonical code name), `message` and `latency_ms`. A line
that does not parse (a writer killed mid-line) is skipped.

The record is assembled from the request's and the response's serialized bytes at the protobuf
wire level (a `PredictionLog` is fields of length-delimited messages), so a message of any class
set (TF Serving's generated classes in the server, `pipeline.tf_protos` classes elsewhere) or bytes
a gRPC call arrived with are logged without a copy into another message. No TensorFlow here.
"""

from __future__ import annotations

import enum
import json
import re
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG_SUFFIX = ".tfrecord"
SIDECAR_SUFFIX = ".requests.jsonl"
_NAME = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<pid>\d+)-(?P<seq>\d+)" + re.escape(LOG_SUFFIX) + "$")


class Api(enum.Enum):
    """The inference APIs whose requests are logged, each with its `PredictionLog` field."""

    PREDICT = "predict"
    CLASSIFY = "classify"
    REGRESS = "regress"
    MULTI_INFERENCE = "multi_inference"

    @property
    def log_field(self) -> str:
        """The `PredictionLog` oneof field: `predict_log`, `classify_log`, ..."""
        return f"{self.value}_log"

    @property
    def field_number(self) -> int:
        return _FIELD_NUMBERS[self]

    @property
    def request_type(self) -> str:
        """Full name of the request message (`tensorflow.serving.PredictRequest`, ...)."""
        return f"tensorflow.serving.{_MESSAGE_STEMS[self]}Request"

    @property
    def response_type(self) -> str:
        return f"tensorflow.serving.{_MESSAGE_STEMS[self]}Response"


_FIELD_NUMBERS = {Api.CLASSIFY: 2, Api.REGRESS: 3, Api.MULTI_INFERENCE: 4, Api.PREDICT: 6}
"""`PredictionLog`'s field numbers (tensorflow_serving/apis/prediction_log.proto)."""
_MESSAGE_STEMS = {Api.PREDICT: "Predict", Api.CLASSIFY: "Classification", Api.REGRESS: "Regression",
                  Api.MULTI_INFERENCE: "MultiInference"}
METADATA_FIELD = 1
"""`PredictionLog.log_metadata`; inside each `*Log`, the request is field 1 and the response 2."""


class Transport(enum.Enum):
    """How a request reached the server."""

    REST = "REST"
    GRPC = "gRPC"


# -- file names ----------------------------------------------------------------------------------

def _separator(prefix: str) -> str:
    return "" if prefix.endswith("/") else "."


def log_file_path(prefix: str, opened: float, pid: int, seq: int) -> Path:
    """The TFRecord file a writer opens: `prefix`, the UTC second `opened` (epoch seconds), pid, number."""
    stamp = datetime.fromtimestamp(int(opened), UTC).strftime("%Y%m%dT%H%M%SZ")
    return Path(f"{prefix}{_separator(prefix)}{stamp}-{pid}-{seq:04d}{LOG_SUFFIX}")


def sidecar_path(log_path: Path | str) -> Path:
    """The companion file of a log file (beside it, the same name with `.requests.jsonl`)."""
    path = Path(log_path)
    stem = path.name[: -len(LOG_SUFFIX)] if path.name.endswith(LOG_SUFFIX) else path.name
    return path.with_name(stem + SIDECAR_SUFFIX)


def log_files(prefix: str) -> list[Path]:
    """Every log file of `prefix` (not the companion files), in writing order (oldest first); none
    when the folder is missing or unreadable."""
    folder, start = _folder_and_start(prefix)
    try:
        names = [entry.name for entry in folder.iterdir()]
    except OSError:
        return []
    found = []
    for name in names:
        if name.startswith(start) and (match := _NAME.match(name[len(start):])):
            found.append((match["stamp"], int(match["pid"]), int(match["seq"]), folder / name))
    return [path for *_, path in sorted(found)]


def _folder_and_start(prefix: str) -> tuple[Path, str]:
    """The folder a prefix's files are in, and how their names start."""
    if prefix.endswith("/"):
        return Path(prefix), ""
    path = Path(prefix)
    return path.parent, path.name + "."


def prefix_folder(prefix: str) -> Path:
    """The folder the files of `prefix` go in (created by the writer)."""
    return _folder_and_start(prefix)[0]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def prune(prefix: str, max_total_bytes: int, keep: Path | None = None) -> list[Path]:
    """Remove the oldest log files of `prefix` (each with its companion) until the prefix's files
    take at most `max_total_bytes`; never `keep` (the file being written). The files removed;
    one that cannot be removed is left (OSError is not raised)."""
    files = [p for p in log_files(prefix) if p != keep]
    sizes = {p: _size(p) + _size(sidecar_path(p)) for p in files}
    total = sum(sizes.values()) + (_size(keep) + _size(sidecar_path(keep)) if keep is not None else 0)
    removed = []
    for path in files:
        if total <= max_total_bytes:
            break
        for doomed in (path, sidecar_path(path)):
            try:
                doomed.unlink(missing_ok=True)
            except OSError:
                continue
        removed.append(path)
        total -= sizes[path]
    return removed


# -- the PredictionLog record --------------------------------------------------------------------

def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return bytes((value,))
    value &= (1 << 64) - 1  # negative int64s: ten bytes, as protobuf writes them
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited field (wire type 2) of a field number below 16."""
    if len(payload) < 0x80:
        return bytes((number << 3 | 2, len(payload))) + payload
    return bytes((number << 3 | 2,)) + _varint(len(payload)) + payload


def as_bytes(message: Any) -> bytes:
    """A protobuf message serialized (bytes as they are; None as an empty message)."""
    if message is None:
        return b""
    if isinstance(message, bytes | bytearray | memoryview):
        return bytes(message)
    return message.SerializeToString()


def prediction_log(api: Api, metadata: bytes, request: bytes, response: bytes) -> bytes:
    """A serialized `PredictionLog`: `log_metadata` and the API's `*_log` with request and response."""
    inner = _field(1, request) + (_field(2, response) if response else b"")
    return _field(METADATA_FIELD, metadata) + _field(api.field_number, inner)


def model_spec(model: str, version: int | None, label: str | None, signature: str) -> bytes:
    """A serialized `ModelSpec`: name, the version (an `Int64Value`) or else the label, signature."""
    spec = _field(1, model.encode()) if model else b""
    if version is not None:
        spec += _field(2, b"\x08" + _varint(version) if version else b"")
    if signature:
        spec += _field(3, signature.encode())
    if version is None and label:
        spec += _field(4, label.encode())
    return spec


def sampling_config(rate: float) -> bytes:
    """A serialized `SamplingConfig` (`sampling_rate`, a double; nothing for 0)."""
    return b"\x09" + struct.pack("<d", rate) if rate else b""


def log_metadata(spec: bytes, sampling: bytes, timestamp_secs: int) -> bytes:
    """A serialized `LogMetadata` from a serialized `model_spec` and `sampling_config`, and the time.
    (Field numbers of tensorflow_serving/apis/logging.proto; `tests/unit/test_request_log.py`
    reads what this writes with TF Serving's own message.)"""
    when = b"\x20" + _varint(timestamp_secs) if timestamp_secs else b""
    return _field(1, spec) + _field(2, sampling) + when


# -- the companion record ------------------------------------------------------------------------

@dataclass(frozen=True)
class RequestFacts:
    """What the companion file says about one logged request (see the module docstring)."""

    offset: int
    bytes: int
    time: str
    model: str
    version: int | None
    label: str | None
    signature: str
    api: str
    transport: str
    status: str
    message: str
    latency_ms: float

    @classmethod
    def from_line(cls, line: bytes | str) -> RequestFacts | None:
        """The facts of one line, or None when it is not a whole, valid line."""
        try:
            data = json.loads(line)
            return cls(
                offset=int(data["offset"]), bytes=int(data["bytes"]), time=str(data["time"]),
                model=str(data["model"]),
                version=None if data.get("version") is None else int(data["version"]),
                label=None if data.get("label") is None else str(data["label"]),
                signature=str(data.get("signature") or ""), api=str(data["api"]),
                transport=str(data["transport"]), status=str(data["status"]),
                message=str(data.get("message") or ""), latency_ms=float(data["latency_ms"]))
        except (ValueError, KeyError, TypeError):
            return None


def iso_time(epoch_seconds: float) -> str:
    """`2025-01-02T03:04:05.123456Z` (UTC, microseconds)."""
    whole = int(epoch_seconds)
    micros = min(999_999, round((epoch_seconds - whole) * 1e6))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{micros:06d}Z"


def facts_line(offset: int, length: int, epoch_seconds: float, model: str, version: int | None,
               label: str | None, signature: str, api: str, transport: str, status: str, message: str,
               latency_ms: float) -> bytes:
    """The companion line of one record (what `RequestFacts.from_line` reads), newline-terminated."""
    return (json.dumps({"offset": offset, "bytes": length, "time": iso_time(epoch_seconds), "model": model,
                        "version": version, "label": label or None, "signature": signature, "api": api,
                        "transport": transport, "status": status, "message": message,
                        "latency_ms": latency_ms}, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
