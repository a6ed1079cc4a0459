"""What a load test is asked to do (`LoadSpec`), its levels, and what this machine can give it.

A spec is plain data: the CLI builds one from its flags, the Load page from its widgets, and a run
folder keeps it as JSON (`to_json` / `from_json`), so a saved run says exactly what was measured.
"""

from __future__ import annotations

import os
import resource
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

DEFAULT_LEVELS = (1, 8, 32)
MAX_LEVELS = 32
RESERVED_FILES = 64
"""File descriptors a worker process keeps for itself (pipes, the loop, libraries)."""
PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


class LoadTestError(Exception):
    """A load test cannot start or go on; ``str()`` says why and what to do."""


@dataclass(frozen=True)
class Level:
    """One step of a sweep: closed loop (``rate`` None: ``concurrency`` clients, each sending its next
    request when the last one is answered) or open loop (``rate`` requests/s whatever the answers,
    at most ``concurrency`` in flight)."""

    concurrency: int
    rate: float | None = None

    @property
    def label(self) -> str:
        return f"concurrency {self.concurrency}" if self.rate is None else f"{self.rate:g} req/s"


@dataclass(frozen=True)
class LoadSpec:
    """Everything one sweep needs. ``url`` is the REST root (metadata, metrics, and the load itself
    unless ``grpc`` names a gRPC target); ``body`` None means the request is built from the
    signature (one example of every input, as the Predict page builds it)."""

    url: str
    model: str
    grpc: str | None = None
    version: int | None = None
    label: str | None = None
    signature: str = "serving_default"
    body: dict[str, Any] | None = None
    body_source: str = ""
    """Where ``body`` came from (a file, the request history), for the report."""
    verb: str | None = None
    """``predict``, ``classify`` or ``regress``; None: from the body and the signature."""
    concurrency: tuple[int, ...] = DEFAULT_LEVELS
    rates: tuple[float, ...] = ()
    """Open-loop rates (requests/s); when given they are the levels and ``max(concurrency)`` caps
    the requests in flight."""
    duration_s: float = 10.0
    warmup_s: float = 2.0
    timeout_s: float = 30.0
    workers: int = 0
    """Worker processes; 0 picks one per CPU (at most 8)."""
    ceiling_s: float = 1.0
    """Seconds per level to measure the generator's own ceiling against a do-nothing server; 0 skips it."""
    metrics: bool = True
    """Scrape the server's Prometheus metrics around each level (the server's breakdown)."""
    expect_errors: bool = False
    """Measure a request the model refuses instead of stopping at the first refusal."""
    tags: dict[str, str] = field(default_factory=dict)
    """Free labels a caller keeps with the run (the batching comparison's setting)."""

    @property
    def transport(self) -> str:
        return "gRPC" if self.grpc else "REST"

    @property
    def levels(self) -> tuple[Level, ...]:
        if self.rates:
            cap = max(self.concurrency) if self.concurrency else 256
            return tuple(Level(cap, rate) for rate in self.rates)
        return tuple(Level(c) for c in self.concurrency)

    def worker_count(self) -> int:
        """The worker processes to start: as asked, else one per CPU (at most 8), never more
        than the largest level needs."""
        wanted = self.workers or min(8, os.cpu_count() or 1)
        most = max(level.concurrency for level in self.levels) if self.levels else 1
        return max(1, min(wanted, most))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["concurrency"], data["rates"] = list(self.concurrency), list(self.rates)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadSpec:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["concurrency"] = tuple(int(c) for c in values.get("concurrency", DEFAULT_LEVELS))
        values["rates"] = tuple(float(r) for r in values.get("rates", ()))
        return cls(**values)

    def with_(self, **changes: Any) -> LoadSpec:
        return replace(self, **changes)


def parse_levels(text: str, *, what: str = "concurrency", integer: bool = True) -> tuple[Any, ...]:
    """``"1,8,32"`` as ``(1, 8, 32)``: positive numbers, at most :data:`MAX_LEVELS`, in the order
    given (duplicates dropped). ``ValueError`` naming the first bad entry."""
    values: list[Any] = []
    for part in (text or "").replace(" ", "").split(","):
        if not part:
            continue
        try:
            value = int(part) if integer else float(part)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise ValueError(f"{what} {part!r} is not {kind}") from None
        if not value > 0:
            raise ValueError(f"{what} {part!r} must be above 0")
        if value not in values:
            values.append(value)
    if not values:
        raise ValueError(f"give at least one {what} level, e.g. 1,8,32")
    if len(values) > MAX_LEVELS:
        raise ValueError(f"at most {MAX_LEVELS} {what} levels, not {len(values)}")
    return tuple(values)


def check_durations(duration_s: float, warmup_s: float, timeout_s: float) -> None:
    """``ValueError`` for a duration, warm-up or timeout out of range."""
    if not 0.1 <= duration_s <= 3600:
        raise ValueError(f"duration {duration_s:g} s: use 0.1 to 3600 s per level")
    if not 0 <= warmup_s <= 600:
        raise ValueError(f"warm-up {warmup_s:g} s: use 0 to 600 s per level")
    if not 0.01 <= timeout_s <= 600:
        raise ValueError(f"timeout {timeout_s:g} s: use 0.01 to 600 s")


def open_files_limit() -> int:
    """The most files one process may open (the hard ``ulimit -n``; workers raise their soft
    limit to it)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard if hard != resource.RLIM_INFINITY else 1 << 20


def local_ports() -> int:
    """How many local ports this machine hands out for outgoing connections to one server."""
    try:
        low, high = (int(v) for v in PORT_RANGE.read_text().split())
    except (OSError, ValueError):
        return 28_000
    return high - low + 1


def connection_limit(workers: int) -> int:
    """The most connections (clients) this machine can hold open to one server with ``workers``
    processes: their file descriptors, and the local port range."""
    per_worker = max(1, open_files_limit() - RESERVED_FILES)
    return min(workers * per_worker, local_ports())


def too_many(level: Level, workers: int) -> str | None:
    """Why this machine cannot give ``level`` (None when it can)."""
    limit = connection_limit(workers)
    if level.concurrency <= limit:
        return None
    return (f"{level.label} needs {level.concurrency:,} connections open at once; this machine allows "
            f"{limit:,} ({workers} worker process(es) × {open_files_limit():,} open files (`ulimit -n`), and "
            f"{local_ports():,} local ports): not run. Raise `ulimit -n`, or load from several machines.")
