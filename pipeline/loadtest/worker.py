"""One load-generating worker process: many clients on one asyncio loop (uvloop when installed).

A worker takes one :class:`LevelPlan` at a time from its pipe and answers with a
:class:`~pipeline.loadtest.results.WorkerReport`; every 0.5 s of a level it also sends its running
counts, for live charts. The clients themselves are in `pipeline.loadtest.clients` (REST) and
`pipeline.loadtest.grpc_clients` (gRPC).

Closed loop: each client sends its next request when the last one is answered. Open loop: requests
start on a fixed schedule (``rate`` per second) on whatever connection is free, at most ``clients``
in flight; a request the cap leaves no room for is counted as ``generator: in-flight limit``.
A level ends when its window ends or the shared stop event is set; requests still in flight are
abandoned (they would end outside the window). The worker leaves when the parent goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
from collections.abc import Callable
from typing import Any

from pipeline.loadtest.clients import GRPC, GRPC_CONNECTIONS, REST, LevelPlan, RestClients, Tally, Target
from pipeline.loadtest.grpc_clients import GrpcClients
from pipeline.loadtest.results import OK, WorkerReport

__all__ = ["GRPC", "GRPC_CONNECTIONS", "REST", "LevelPlan", "Target", "main", "probe", "run_level"]

PROGRESS_S = 0.5
WATCH_S = 0.05

async def _open_loop(clients: Any, plan: LevelPlan, tally: Tally, tasks: set[asyncio.Task]) -> None:
    """Start requests on schedule (every ``1 / rate`` s from the warm-up's start), at most
    ``plan.clients`` in flight; latencies count from the scheduled time."""
    interval = 1.0 / plan.rate
    due = tally.begin - plan.warmup_s
    count = 0
    while True:
        now = time.perf_counter()
        while due <= now:
            if len(tasks) >= plan.clients:
                tally.failure("generator: in-flight limit",
                              f"{plan.clients} requests already in flight (raise the concurrency cap)")
            else:
                task = asyncio.ensure_future(clients.scheduled(count % plan.clients, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            count += 1
            due += interval
        await asyncio.sleep(max(0.0, due - time.perf_counter()))


async def run_level(plan: LevelPlan, stop: Any,
                    progress: Callable[[Tally], None] | None = None) -> WorkerReport:
    """Run this worker's share of one level and return what it measured."""
    tally = Tally(plan)
    clients: Any = GrpcClients(plan, tally) if plan.target.transport == GRPC else RestClients(plan, tally)
    start = tally.begin - plan.warmup_s
    await asyncio.sleep(max(0.0, start - time.perf_counter()))
    tasks: set[asyncio.Task] = set()
    if plan.rate is None:
        tasks.update(asyncio.ensure_future(clients.closed_loop(i)) for i in range(plan.clients))
        driver = None
    else:
        driver = asyncio.ensure_future(_open_loop(clients, plan, tally, tasks))
    next_progress = time.perf_counter() + PROGRESS_S
    try:
        while time.perf_counter() < tally.end:
            if stop.is_set():
                tally.stopped_at = time.perf_counter()
                break
            if progress is not None and time.perf_counter() >= next_progress:
                progress(tally)
                next_progress += PROGRESS_S
            await asyncio.sleep(min(WATCH_S, max(0.0, tally.end - time.perf_counter())))
    finally:
        for task in [*tasks, *([driver] if driver else [])]:
            task.cancel()
        await asyncio.gather(*tasks, *([driver] if driver else []), return_exceptions=True)
        clients.close()
    return tally.report(plan.clients)


def probe(target: Target, timeout_s: float) -> tuple[str, str, float]:
    """Send one request the way the workers will, in this process: ``(kind, message, seconds)``
    with kind ``OK`` for a success (used before a sweep to say at once what is wrong)."""
    plan = LevelPlan(target, 1, None, time.time(), 0.0, timeout_s + 1.0, timeout_s)
    found: dict[str, Any] = {}

    async def once() -> None:
        tally = Tally(plan)
        clients: Any = GrpcClients(plan, tally) if target.transport == GRPC else RestClients(plan, tally)
        started = time.perf_counter()
        try:
            if isinstance(clients, GrpcClients):
                await clients.one(0, started)
            else:
                await clients.one(0, started, None)
        finally:
            found["seconds"] = time.perf_counter() - started
            clients.close()
        kind = next(iter(tally.kinds), "no answer")
        found["kind"], found["message"] = kind, tally.examples.get(kind, "")

    asyncio.run(once())
    return found["kind"], found["message"], found["seconds"]


def _new_loop() -> asyncio.AbstractEventLoop:
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def _raise_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _ParentWatch:
    """The stop event, also set when the parent process is gone (so a worker never outlives it)."""

    def __init__(self, event: Any, parent: int) -> None:
        self.event, self.parent = event, parent

    def is_set(self) -> bool:
        return self.event.is_set() or os.getppid() != self.parent


def main(worker_id: int, pipe: Any, stop: Any, parent: int) -> None:
    """A worker's life: announce itself, then run each plan received until ``None`` or EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when a run stops (Ctrl+C)
    _raise_open_files()
    watch = _ParentWatch(stop, parent)
    pipe.send(("ready", worker_id))
    while True:
        try:
            plan = pipe.recv()
        except (EOFError, OSError):
            return
        if plan is None:
            return

        def progress(tally: Tally) -> None:
            errors = sum(v for k, v in tally.kinds.items() if k != OK)
            pipe.send(("progress", worker_id, tally.kinds.get(OK, 0), errors))

        loop = _new_loop()
        try:
            report = loop.run_until_complete(run_level(plan, watch, progress))
        except Exception as error:  # noqa: BLE001 - the parent reports it and ends the run
            pipe.send(("failed", worker_id, f"{type(error).__name__}: {error}"))
            return
        finally:
            loop.close()
        pipe.send(("done", worker_id, report))
