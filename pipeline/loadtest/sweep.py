"""A sweep: the spec's levels one after the other, each measured from the client and the server.

For each level: the generator's ceiling at that level against a do-nothing server of the same
transport (`pipeline.loadtest.floor`), then warm-up and the measured window against the target,
with the server's Prometheus metrics scraped when the window opens and closes (its own breakdown
of the same interval, `pipeline.client.breakdown`). A level within 80% of the ceiling is flagged.
The sweep ends early, keeping what it measured, when it is stopped, when the server stops
answering, or when a level asks for more connections than the machine can open.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pipeline.client.breakdown import breakdown
from pipeline.client.errors import ClientError
from pipeline.client.rest import ServingClient
from pipeline.loadtest import worker
from pipeline.loadtest.floor import Floor
from pipeline.loadtest.pool import WorkerPool
from pipeline.loadtest.results import LevelResult, merge
from pipeline.loadtest.spec import Level, LoadSpec, LoadTestError, too_many
from pipeline.loadtest.target import Resolved, resolve

CEILING_SHARE = 0.8
CEILING_WARMUP_S = 0.3
DONE, STOPPED, FAILED = "done", "stopped", "failed"
NO_ANSWER = ("connection refused", "connection reset", "host not found", "timeout")


@dataclass
class SweepResult:
    """What a sweep measured and how it ended (``status`` done, stopped or failed, ``message`` why)."""

    status: str = DONE
    message: str = ""
    where: str = ""
    body: dict[str, Any] | None = None
    body_source: str = ""
    version: int | None = None
    workers: int = 0
    levels: list[LevelResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "where": self.where, "body": self.body,
                "body_source": self.body_source, "version": self.version, "workers": self.workers,
                "levels": [level.to_json() for level in self.levels], "skipped": list(self.skipped),
                "warnings": list(self.warnings)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepResult:
        return cls(status=data.get("status", DONE), message=data.get("message", ""),
                   where=data.get("where", ""), body=data.get("body"),
                   body_source=data.get("body_source", ""),
                   version=data.get("version"), workers=int(data.get("workers", 0)),
                   levels=[LevelResult.from_json(level) for level in data.get("levels", [])],
                   skipped=list(data.get("skipped", [])), warnings=list(data.get("warnings", [])))


@dataclass
class Events:
    """Callbacks a caller gives to watch a sweep (all optional)."""

    phase: Callable[[str], None] | None = None
    """What the sweep is doing now, in words."""
    progress: Callable[[Level, float, int, int], None] | None = None
    """(level, seconds into its window, answered OK so far, errors so far), twice a second."""
    level: Callable[[LevelResult, SweepResult], None] | None = None
    """A level has been measured (the result so far is the second argument)."""


class Scraper:
    """The server's metrics text, read in a helper thread at a chosen moment (a failure is kept
    as its message: a server without metrics still gets load-tested)."""

    def __init__(self, client: ServingClient) -> None:
        self.client = client
        self.problem: str | None = None

    def read(self) -> str | None:
        try:
            return self.client.metrics_text()
        except ClientError as error:
            self.problem = str(error)
            return None

    def read_at(self, moment: float) -> Callable[[], str | None]:
        """Start reading at wall-clock ``moment``; the returned function waits for the text."""
        found: dict[str, str | None] = {}

        def run() -> None:
            time.sleep(max(0.0, moment - time.time()))
            found["text"] = self.read()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def result() -> str | None:
            thread.join()
            return found.get("text")

        return result


def ceiling_warning(result: LevelResult) -> str | None:
    """The warning for a level that reached 80% of the generator's ceiling, else None."""
    ceiling = result.generator_ceiling_rps
    if not ceiling or result.requests_per_second < CEILING_SHARE * ceiling:
        return None
    share = result.requests_per_second / ceiling
    return (f"{result.label}: {result.requests_per_second:,.0f} req/s is {share:.0%} of what this load "
            f"generator reaches against a server that does nothing ({ceiling:,.0f} req/s): the generator, "
            "not only the server, limits this number. Use more --workers, or load from another machine.")


def level_warnings(result: LevelResult) -> tuple[str, ...]:
    found = []
    if (text := ceiling_warning(result)) is not None:
        found.append(text)
    if result.rate is None and result.clients_connected < result.clients:
        found.append(f"{result.label}: only {result.clients_connected:,} of {result.clients:,} clients got "
                     "an answer: the server or this machine could not take that many connections.")
    if result.rate is not None and result.ok_per_second < 0.9 * result.rate:
        found.append(f"{result.label}: {result.ok_per_second:,.0f} answered OK per second, below the rate "
                     "asked: the server cannot keep up (or requests failed).")
    return tuple(found)


def steadier_ceiling(measured: float | None, level: Level, earlier: dict[Level, float]) -> float | None:
    """The ceiling to judge closed-loop ``level`` by: what was measured at it, or more if fewer
    clients already reached more (against a server that does nothing, more clients never reach
    less, so a lower reading is the noise of a busy machine, not the generator's limit); recorded
    in ``earlier``."""
    fewer = [c for lv, c in earlier.items() if lv.concurrency <= level.concurrency]
    best = max([*fewer, *([measured] if measured else [])], default=None)
    if best is not None:
        earlier[level] = best
    return best


def _measure_ceiling(pool: WorkerPool, floor: Floor, target: worker.Target, level: Level,
                     spec: LoadSpec) -> float | None:
    """Requests/s the generator reaches at ``level`` against ``floor`` (None if it could not)."""
    floor_target = replace(target, host="127.0.0.1", port=floor.port, tls=False)
    reports = pool.run(floor_target, level, CEILING_WARMUP_S, spec.ceiling_s, spec.timeout_s)
    measured = merge(level, spec.transport, spec.ceiling_s, reports)
    return measured.requests_per_second if measured.answered and not measured.partial else None


def run_sweep(spec: LoadSpec, events: Events | None = None,
              stop: threading.Event | None = None) -> SweepResult:
    """Run every level of ``spec``; never raises for a load problem: the result says how it ended."""
    events, stop = events or Events(), stop or threading.Event()
    result = SweepResult()

    def say(text: str) -> None:
        if events.phase is not None:
            events.phase(text)

    say("checking the server, the model and the request")
    try:
        resolved = resolve(spec)
    except LoadTestError as error:
        return SweepResult(status=FAILED, message=str(error))
    result.where, result.body, result.body_source = resolved.where, resolved.body, resolved.body_source
    result.version, result.workers = resolved.version, spec.worker_count()
    levels = []
    for level in spec.levels:
        reason = too_many(level, result.workers)
        if reason is not None:
            result.skipped.append(reason)
        else:
            levels.append(level)
    if not levels:
        return replace(result, status=FAILED, message=result.skipped[0])
    say(f"starting {result.workers} load generator process(es)")
    try:
        _run_levels(spec, resolved, levels, result, events, stop, say)
    except LoadTestError as error:
        result.status, result.message = FAILED, str(error)
    if result.status == DONE and stop.is_set():
        result.status, result.message = STOPPED, "stopped before the end; the levels measured so far are kept"
    if result.status == DONE and result.skipped:  # asked for, not measured: said, and not a success
        result.status, result.message = FAILED, result.skipped[0]
    return result


def _run_levels(spec: LoadSpec, resolved: Resolved, levels: list[Level], result: SweepResult, events: Events,
                stop: threading.Event, say: Callable[[str], None]) -> None:
    scraper = Scraper(ServingClient(spec.url, timeout=10.0)) if spec.metrics else None
    with WorkerPool(result.workers, halted=stop.is_set) as pool:
        threading.Thread(target=lambda: (stop.wait(), pool.stop()), daemon=True).start()
        floor = _start_floor(spec, result)
        try:
            ceilings: dict[Level, float] = {}
            for index, level in enumerate(levels, start=1):
                if stop.is_set():
                    return
                # open loop: what the generator can push at most with that many requests in flight
                closed = Level(level.concurrency)
                if floor is not None and closed not in ceilings:
                    say(f"level {index}/{len(levels)}: {level.label}: the generator's ceiling")
                    measured = _measure_ceiling(pool, floor, resolved.target, closed, spec)
                    steadier_ceiling(measured, closed, ceilings)
                ceiling = ceilings.get(closed)
                if stop.is_set():
                    return
                say(f"level {index}/{len(levels)}: {level.label}")
                measured = _one_level(pool, spec, resolved, level, scraper, events)
                measured = replace(measured, generator_ceiling_rps=ceiling)
                measured = replace(measured, warnings=level_warnings(measured))
                result.levels.append(measured)
                result.warnings.extend(measured.warnings)
                if events.level is not None:
                    events.level(measured, result)
                if measured.answered == 0 and set(measured.error_kinds) <= set(NO_ANSWER) and measured.errors:
                    kind = next(iter(measured.error_kinds))
                    result.status = FAILED
                    result.message = (f"the server stopped answering at {level.label} ({kind}: "
                                      f"{measured.error_examples.get(kind, '')}); later levels were not run")
                    return
        finally:
            if floor is not None:
                floor.stop()
            if scraper is not None and scraper.problem:
                result.warnings.append(f"no server breakdown: {scraper.problem}")


def _start_floor(spec: LoadSpec, result: SweepResult) -> Floor | None:
    if spec.ceiling_s <= 0:
        return None
    try:
        return Floor(spec.transport)
    except OSError as error:
        result.warnings.append(f"the generator's ceiling was not measured: {error}")
        return None


def _one_level(pool: WorkerPool, spec: LoadSpec, resolved: Resolved, level: Level, scraper: Scraper | None,
               events: Events) -> LevelResult:
    start_at = time.time() + 0.2
    window = start_at + spec.warmup_s
    before = scraper.read_at(window) if scraper is not None else None

    def progress(ok: int, errors: int) -> None:
        if events.progress is not None:
            events.progress(level, max(0.0, time.time() - window), ok, errors)

    reports = pool.run(resolved.target, level, spec.warmup_s, spec.duration_s, spec.timeout_s, progress,
                       start_at=start_at)
    measured = merge(level, spec.transport, spec.duration_s, reports)
    if scraper is None or before is None:
        return measured
    first, last = before(), scraper.read()
    if first is None or last is None:
        return measured
    try:
        server = breakdown(first, last, spec.model).to_json()
    except ValueError as error:
        scraper.problem = f"the metrics are not in Prometheus' text format ({error})"
        return measured
    return replace(measured, server=server)
