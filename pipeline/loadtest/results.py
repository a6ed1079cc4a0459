"""What one level of a sweep measured, merged from its worker processes, and how it is printed.

Counting rules (the same as wrk's and h2load's, so the numbers compare):
- a request counts in a level when it **ends** inside the measured window (after the warm-up);
- ``requests_per_second`` counts every answered request (any HTTP status or gRPC code), and
  ``ok_per_second`` the successful ones; a request that got no answer (refused connection,
  timeout) is an error but not a request per second;
- latency percentiles are over answered requests, nearest rank (``p99`` of 1,000 answers is the
  990th fastest); open-loop latencies start at the request's scheduled time, so a generator that
  falls behind shows up in the numbers instead of hiding them.
"""

from __future__ import annotations

import json
from array import array
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from pipeline.loadtest.spec import Level

OK = "OK"
QUANTILES = {"p50_ms": 50, "p90_ms": 90, "p99_ms": 99}


@dataclass
class WorkerReport:
    """One worker process's share of one level (what it sends back over its pipe)."""

    latencies: bytes = b""
    """``array('d')`` of answered requests' latencies, seconds."""
    kinds: dict[str, int] = field(default_factory=dict)
    """``OK`` or an error kind (``HTTP 400``, ``gRPC NOT_FOUND``, ``connection refused``) -> count."""
    examples: dict[str, str] = field(default_factory=dict)
    """Error kind -> the first message seen (the server's own text for HTTP and gRPC errors)."""
    answered: int = 0
    clients: int = 0
    connected: int = 0
    """Clients that got at least one answer."""
    elapsed_s: float = 0.0
    """Seconds of the measured window this worker covered (less than asked when stopped)."""


@dataclass(frozen=True)
class LevelResult:
    """One level, all workers together. Times in milliseconds; ``None`` when nothing was answered."""

    concurrency: int
    rate: float | None
    transport: str
    duration_s: float
    requests: int
    """Requests that ended in the window, answered or not."""
    answered: int
    ok: int
    errors: int
    error_kinds: dict[str, int]
    error_examples: dict[str, str]
    requests_per_second: float
    ok_per_second: float
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    clients: int
    clients_connected: int
    generator_ceiling_rps: float | None = None
    """What the generator reached at this level against a server that does nothing."""
    warnings: tuple[str, ...] = ()
    server: dict[str, Any] | None = None
    """The server's breakdown of the same window (`pipeline.client.breakdown.Breakdown.to_json`)."""
    partial: bool = False
    """Cut short by Stop."""

    @property
    def label(self) -> str:
        return Level(self.concurrency, self.rate).label

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LevelResult:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["warnings"] = tuple(values.get("warnings", ()))
        return cls(**values)


def merge(level: Level, transport: str, duration_s: float, reports: list[WorkerReport]) -> LevelResult:
    """One level's result from its workers' reports; ``duration_s`` is the window asked for (a
    stopped level uses the longest window a worker covered)."""
    kinds: dict[str, int] = {}
    examples: dict[str, str] = {}
    parts = []
    for report in reports:
        for kind, count in report.kinds.items():
            kinds[kind] = kinds.get(kind, 0) + count
        for kind, text in report.examples.items():
            examples.setdefault(kind, text)
        values = array("d")
        values.frombytes(report.latencies)
        parts.append(np.frombuffer(values, dtype=np.float64) if len(values) else np.empty(0))
    latencies = np.concatenate(parts) if parts else np.empty(0)
    covered = max((r.elapsed_s for r in reports), default=0.0)
    partial = covered < duration_s * 0.999
    seconds = covered if partial else duration_s
    ok = kinds.get(OK, 0)
    answered = sum(r.answered for r in reports)
    errors = sum(count for kind, count in kinds.items() if kind != OK)
    stats: dict[str, float | None] = dict.fromkeys((*QUANTILES, "mean_ms", "max_ms"))
    if latencies.size:
        ms = latencies * 1000.0
        for key, q in QUANTILES.items():
            stats[key] = float(np.percentile(ms, q, method="inverted_cdf"))
        stats["mean_ms"], stats["max_ms"] = float(ms.mean()), float(ms.max())
    error_kinds = {k: v for k, v in sorted(kinds.items()) if k != OK}
    return LevelResult(
        concurrency=level.concurrency, rate=level.rate, transport=transport, duration_s=round(seconds, 3),
        requests=ok + errors, answered=answered, ok=ok, errors=errors, error_kinds=error_kinds,
        error_examples={k: examples[k] for k in error_kinds if k in examples},
        requests_per_second=answered / seconds if seconds > 0 else 0.0,
        ok_per_second=ok / seconds if seconds > 0 else 0.0,
        clients=sum(r.clients for r in reports), clients_connected=sum(r.connected for r in reports),
        partial=partial, **stats)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


TABLE_HEAD = ("level", "req/s", "ok/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "ceiling req/s")


def table_row(result: LevelResult) -> tuple[str, ...]:
    """One row of the printed table (see :data:`TABLE_HEAD`)."""
    errors = f"{result.errors:,}"
    if result.error_kinds:
        errors += " (" + ", ".join(f"{k}: {v:,}" for k, v in result.error_kinds.items()) + ")"
    ceiling = "-" if result.generator_ceiling_rps is None else f"{result.generator_ceiling_rps:,.0f}"
    label = result.label + (" (stopped)" if result.partial else "")
    return (label, f"{result.requests_per_second:,.1f}", f"{result.ok_per_second:,.1f}", _ms(result.p50_ms),
            _ms(result.p90_ms), _ms(result.p99_ms), _ms(result.max_ms), errors, ceiling)


def format_table(results: list[LevelResult]) -> str:
    """The levels as a fixed-width text table."""
    rows = [TABLE_HEAD, *(table_row(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEAD))]
    lines = []
    for row in rows:
        numbers = (cell.rjust(width) for cell, width in zip(row[1:-2], widths[1:-2], strict=True))
        cells = [row[0].ljust(widths[0]), *numbers, row[-2].ljust(widths[-2]), row[-1].rjust(widths[-1])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_breakdown(result: LevelResult) -> str:
    """The server's breakdown of one level in one line (or why there is none)."""
    from pipeline.client.breakdown import Breakdown

    found = Breakdown.from_json(result.server)
    if found is None:
        return f"{result.label}: no server metrics"
    parts = []
    for stage in [*found.stages, *found.other]:
        if stage.mean is None:
            parts.append(f"{stage.title}: none observed")
            continue
        unit = " rows" if stage.unit == "rows" else " ms"
        tail = "" if stage.per_model else " (all models)"
        parts.append(f"{stage.title} {stage.mean:.3g}{unit} (p99 {stage.p99 or 0:.3g}){tail}")
    text = f"{result.label}: " + (" · ".join(parts) or "no request-path series")
    if found.missing:
        text += f"; not exposed: {', '.join(found.missing)}"
    return text


def json_line(result: LevelResult) -> str:
    """One level as one line of JSON (``--json``)."""
    return json.dumps(result.to_json(), sort_keys=True)
