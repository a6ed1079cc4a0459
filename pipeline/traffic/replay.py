"""Replay logged requests on two versions (or labels) of a running server and see where they differ.

`replay(entries, a, b, sender)` sends each logged request to target `a` and to target `b` of the
same model, one after the other, and compares the two answers value by value
(`answers.compare`): a row per request with the largest absolute difference, rows sorted by it
(largest first), and a `ReplaySummary`: the share agreeing within the tolerance, the largest
difference, each side's latency (median and 95th percentile) and failures. A target is a version
(`3`, `version:3`), a label (`stable`, `label:stable`), `latest`, or `recorded` (the answer the log
kept: "what users got" against a candidate version).

Senders speak to the server through `pipeline.client`: `RestSender` (TF Serving's REST API; the
logged request becomes a columnar `:predict` body, or `:classify`/`:regress` examples, by
`pipeline.client.warmup_records`; multi-inference has no REST API and is sent over gRPC only) and
`GrpcSender` (the logged request message itself, with the target's model spec). Both sides of one
replay use the same sender, so answers compare like with like. A request one side fails and the
other answers disagrees; both failing with the same message agrees. No TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from pipeline.client.errors import ClientError
from pipeline.traffic import answers
from pipeline.traffic.logs import Logged

GRPC_METHODS = {"predict": "Predict", "classify": "Classify", "regress": "Regress",
                "multi_inference": "MultiInference"}
DEFAULT_TOLERANCE = 1e-6


@dataclass(frozen=True)
class Target:
    """What a request is sent to: `version` N, `label` L, `latest`, or the `recorded` answer."""

    kind: str
    value: int | str | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        """`3`, `version:3`, `stable`, `label:stable`, `latest` or `recorded`; ValueError otherwise."""
        text = text.strip()
        if text in ("latest", "recorded"):
            return cls(text)
        kind, colon, value = text.partition(":")
        if colon:
            if kind == "version" and value.isdigit():
                return cls("version", int(value))
            if kind == "label" and value[:1].isalpha():
                return cls("label", value)
        elif text.isdigit():
            return cls("version", int(text))
        elif text[:1].isalpha():
            return cls("label", text)
        raise ValueError(f"not a target: {text!r} (a version number, a label, latest or recorded)")

    def __str__(self) -> str:
        return f"{self.kind} {self.value}" if self.value is not None else self.kind

    @property
    def version(self) -> int | None:
        return self.value if self.kind == "version" else None  # type: ignore[return-value]

    @property
    def label(self) -> str | None:
        return self.value if self.kind == "label" else None  # type: ignore[return-value]


@dataclass(frozen=True)
class Answer:
    """One side's answer to one request: named arrays, or the error that came back instead."""

    outputs: dict[str, np.ndarray] | None
    error: str = ""
    latency_ms: float | None = None


class Sender(Protocol):
    transport: str

    def send(self, entry: Logged, log: Any, target: Target, model: str) -> Answer: ...


class RestSender:
    """Sends over TF Serving's REST API with a `pipeline.client.rest.ServingClient`."""

    transport = "REST"

    def __init__(self, client: Any) -> None:
        self.client = client

    def send(self, entry: Logged, log: Any, target: Target, model: str) -> Answer:
        from pipeline.client.warmup_records import parse_record

        if entry.api == "multi_inference":
            return Answer(None, "multi-inference has no REST API: replay it over gRPC")
        request = parse_record(log.SerializeToString())
        if request is None:
            return Answer(None, f"a {entry.api} request cannot be sent over REST")
        where = {"version": target.version, "label": target.label}
        try:
            if request.kind == "predict":
                body = {"signature_name": request.signature, "inputs": request.inputs}
                result = self.client.predict_body(model, body, **where)
            else:
                call = self.client.classify if request.kind == "classify" else self.client.regress
                result = call(model, request.examples, signature_name=request.signature, **where)
        except ClientError as error:
            return Answer(None, _error_text(error))
        return Answer(answers.rest_outputs(result.response, entry.api), latency_ms=result.latency_s * 1000)


class GrpcSender:
    """Sends the logged request message itself over gRPC with a `pipeline.client.grpc.GrpcClient`."""

    transport = "gRPC"

    def __init__(self, client: Any) -> None:
        self.client = client

    def send(self, entry: Logged, log: Any, target: Target, model: str) -> Answer:
        request = type(getattr(log, f"{entry.api}_log").request)()
        request.CopyFrom(getattr(log, f"{entry.api}_log").request)
        specs = [task.model_spec for task in request.tasks] if entry.api == "multi_inference" \
            else [request.model_spec]
        for spec in specs:
            spec.name = model
            _aim(spec, target)
        try:
            response, seconds = self.client.call(GRPC_METHODS[entry.api], request)
        except ClientError as error:
            return Answer(None, _error_text(error))
        return Answer(answers.response_outputs(response, entry.api), latency_ms=seconds * 1000)


def _aim(spec: Any, target: Target) -> None:
    """Point a ModelSpec at `target` (latest: no version choice)."""
    spec.ClearField("version_choice")
    if target.version is not None:
        spec.version.value = target.version
    elif target.label is not None:
        spec.version_label = target.label


def _error_text(error: ClientError) -> str:
    code = f"HTTP {error.status_code}: " if getattr(error, "status_code", None) else ""
    return code + str(getattr(error, "message", None) or error).splitlines()[0]


def recorded(entry: Logged, log: Any) -> Answer:
    """The answer the log kept for `entry` (its error when it failed)."""
    logged = getattr(log, f"{entry.api}_log")
    if not logged.HasField("response") or (entry.status not in (None, "OK")):
        return Answer(None, f"{entry.status or 'no response logged'}: {entry.message}".rstrip(": "),
                      entry.latency_ms)
    try:
        return Answer(answers.response_outputs(logged.response, entry.api), latency_ms=entry.latency_ms)
    except ValueError as error:
        return Answer(None, f"the logged answer cannot be read: {error}")


@dataclass(frozen=True)
class ReplayRow:
    """One request, both answers, and how far apart they are."""

    entry: Logged
    a: Answer
    b: Answer
    difference: float
    """Largest absolute difference between the answers; 0.0 when both failed alike; inf when they
    cannot be compared (one failed, other outputs or shapes)."""
    agree: bool
    note: str = ""


@dataclass
class ReplaySummary:
    """What a replay found, for people and for a CI job's exit status."""

    requests: int = 0
    agreeing: int = 0
    largest: float = 0.0
    tolerance: float = DEFAULT_TOLERANCE
    failed_a: int = 0
    failed_b: int = 0
    latencies_a: list[float] = field(default_factory=list)
    latencies_b: list[float] = field(default_factory=list)

    @property
    def share_agreeing(self) -> float:
        return self.agreeing / self.requests if self.requests else 1.0

    @staticmethod
    def _percentile(values: Sequence[float], q: float) -> float | None:
        return float(np.percentile(values, q)) if values else None

    def latency(self, side: str, q: float = 50) -> float | None:
        """Median (or percentile `q`) latency of side `a` or `b`, ms."""
        return self._percentile(self.latencies_a if side == "a" else self.latencies_b, q)


@dataclass
class Replay:
    """A finished replay: targets, rows (largest difference first) and the summary."""

    a: Target
    b: Target
    transport: str
    rows: list[ReplayRow]
    summary: ReplaySummary


def replay(entries: Sequence[Logged], a: Target, b: Target, sender: Sender, *, model: str | None = None,
           tolerance: float = DEFAULT_TOLERANCE,
           on_progress: Callable[[int, int], None] | None = None) -> Replay:
    """Send every entry to `a` and `b` (each entry's own model unless `model` is given) and compare;
    see the module docstring. A record that can no longer be read is a row whose both sides say so."""
    summary = ReplaySummary(tolerance=tolerance)
    rows = []
    for done, entry in enumerate(entries, start=1):
        try:
            log = entry.prediction_log()
        except (OSError, ValueError) as error:
            missing = Answer(None, f"record unreadable: {error}")
            rows.append(ReplayRow(entry, missing, missing, math.inf, False, "record unreadable"))
            summary.requests += 1
            continue
        target_model = model or entry.model
        sides = [recorded(entry, log) if target.kind == "recorded" else sender.send(entry, log, target,
                                                                                      target_model)
                 for target in (a, b)]
        rows.append(_row(entry, sides[0], sides[1], tolerance))
        _count(summary, rows[-1])
        if on_progress is not None:
            on_progress(done, len(entries))
    rows.sort(key=lambda row: (-row.difference if not math.isnan(row.difference) else -math.inf,
                               -(row.entry.time.timestamp() if row.entry.time else 0)))
    return Replay(a, b, sender.transport, rows, summary)


def _row(entry: Logged, a: Answer, b: Answer, tolerance: float) -> ReplayRow:
    if a.outputs is None or b.outputs is None:
        if a.outputs is None and b.outputs is None and a.error == b.error:
            return ReplayRow(entry, a, b, 0.0, True, f"both failed: {a.error}")
        failed = "A" if a.outputs is None else "B"
        both = a.outputs is None and b.outputs is None
        note = "both failed, differently" if both else f"{failed} failed: {(a if failed == 'A' else b).error}"
        return ReplayRow(entry, a, b, math.inf, False, note)
    difference, note = answers.compare(a.outputs, b.outputs)
    return ReplayRow(entry, a, b, difference, difference <= tolerance, note)


def _count(summary: ReplaySummary, row: ReplayRow) -> None:
    summary.requests += 1
    summary.agreeing += row.agree
    summary.largest = max(summary.largest, row.difference)
    summary.failed_a += row.a.outputs is None
    summary.failed_b += row.b.outputs is None
    if row.a.latency_ms is not None and row.a.outputs is not None:
        summary.latencies_a.append(row.a.latency_ms)
    if row.b.latency_ms is not None and row.b.outputs is not None:
        summary.latencies_b.append(row.b.latency_ms)
