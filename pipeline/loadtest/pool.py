"""The load generator's worker processes, started once per sweep and given one level at a time.

Workers are started with ``spawn`` (a fresh interpreter: nothing of the parent's threads, gRPC
channels or locks is inherited) and each runs `pipeline.loadtest.worker.main`. :meth:`WorkerPool.run`
splits a level between them (clients, or the open-loop rate), starts them at the same wall-clock
moment and gathers their reports, passing running counts to a callback meanwhile. :meth:`stop`
ends the level in progress within a tenth of a second (each worker reports what it measured so
far); :meth:`close` ends the processes, by their own handles only.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable
from multiprocessing.connection import wait
from typing import Any

from pipeline.loadtest import worker
from pipeline.loadtest.results import WorkerReport
from pipeline.loadtest.spec import Level, LoadTestError

START_TIMEOUT_S = 120.0
"""Starting a Python process on a busy 2-core machine can take seconds."""
LEAD_S = 0.2
"""How far ahead of now a level's start is set, so every worker has its plan before it begins."""
GRACE_S = 15.0
"""How long after a level's end a worker may take to report before it is given up on."""

Progress = Callable[[int, int], None]
"""Called with (answered OK so far, errors so far) of the level, every half second."""


def split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal whole shares, largest first (``split(5, 2) == [3, 2]``)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class WorkerPool:
    """``count`` worker processes; a context manager that closes them. ``halted`` tells whether
    the caller wants everything to stop (a level started after that ends at once)."""

    def __init__(self, count: int, halted: Callable[[], bool] | None = None) -> None:
        self.halted = halted or (lambda: False)
        context = multiprocessing.get_context("spawn")
        self.stop_event = context.Event()
        self.processes: list[Any] = []
        self.pipes: list[Any] = []
        for index in range(count):
            mine, theirs = context.Pipe()
            process = context.Process(target=worker.main, args=(index, theirs, self.stop_event, os.getpid()),
                                      name=f"loadtest-worker-{index}", daemon=True)
            process.start()
            theirs.close()
            self.processes.append(process)
            self.pipes.append(mine)
        self._wait_ready()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def count(self) -> int:
        return len(self.processes)

    def _wait_ready(self) -> None:
        waiting = set(range(self.count))
        deadline = time.monotonic() + START_TIMEOUT_S
        while waiting:
            if time.monotonic() > deadline:
                self.close()
                raise LoadTestError(f"{len(waiting)} load generator process(es) did not start within "
                                    f"{START_TIMEOUT_S:g} s: the machine is overloaded")
            for pipe in wait([self.pipes[i] for i in waiting], timeout=0.5):
                index = self.pipes.index(pipe)
                try:
                    message = pipe.recv()
                except EOFError:
                    self.close()
                    raise LoadTestError("a load generator process exited while starting") from None
                if message[0] == "ready":
                    waiting.discard(index)

    def stop(self) -> None:
        """End the level in progress now (each worker reports what it measured so far)."""
        self.stop_event.set()

    def run(self, target: worker.Target, level: Level, warmup_s: float, duration_s: float, timeout_s: float,
            progress: Progress | None = None, start_at: float | None = None) -> list[WorkerReport]:
        """Run one level on every worker that has a share of it; their reports. ``LoadTestError``
        if a worker dies or fails."""
        self.stop_event.clear()
        if self.halted():  # a stop asked for just before this level: it must not be lost
            self.stop_event.set()
        start_at = start_at or time.time() + LEAD_S
        shares = split(level.concurrency, self.count)
        connections = split(min(level.concurrency, worker.GRPC_CONNECTIONS), self.count)
        rates = ([level.rate * share / level.concurrency for share in shares] if level.rate
                 else [None] * self.count)
        busy = {}
        for index, clients in enumerate(shares):
            if clients == 0:
                continue
            plan = worker.LevelPlan(target, clients, rates[index], start_at, warmup_s, duration_s, timeout_s,
                                    max(1, connections[index]))
            self.pipes[index].send(plan)
            busy[index] = self.pipes[index]
        reports: dict[int, WorkerReport] = {}
        counts: dict[int, tuple[int, int]] = {}
        deadline = start_at + warmup_s + duration_s + GRACE_S
        while len(reports) < len(busy):
            ready = wait([pipe for i, pipe in busy.items() if i not in reports], timeout=0.25)
            for pipe in ready:
                index = next(i for i, p in busy.items() if p is pipe)
                try:
                    message = pipe.recv()
                except EOFError:
                    raise LoadTestError(f"load generator process {index} exited during the level "
                                        f"(exit code {self.processes[index].exitcode})") from None
                if message[0] == "progress":
                    counts[index] = (message[2], message[3])
                    if progress is not None:
                        progress(sum(c[0] for c in counts.values()), sum(c[1] for c in counts.values()))
                elif message[0] == "done":
                    reports[index] = message[2]
                elif message[0] == "failed":
                    raise LoadTestError(f"load generator process {index} failed: {message[2]}")
            if time.time() > deadline and not self.stop_event.is_set():
                self.stop()  # a worker that does not end its level on time is asked once more
                deadline = time.time() + GRACE_S
            elif time.time() > deadline:
                raise LoadTestError("a load generator process did not report its level: the machine is "
                                    "overloaded")
        return [reports[i] for i in sorted(reports)]

    def close(self) -> None:
        """End every worker: ask, then terminate those still there (our own children only)."""
        self.stop_event.set()
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        deadline = time.monotonic() + 2.0
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join(2.0)
            if process.is_alive():
                process.kill()
                process.join(2.0)
        for pipe in self.pipes:
            pipe.close()
        self.processes, self.pipes = [], []
