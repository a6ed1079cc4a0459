"""A bounded concurrent :predict load and a status timeline, for the rollout and crash tests.

`PredictLoad` runs N threads, each with its own keep-alive `http.client` connection, sending
`{"instances": [[x1, x2], ...]}` (1-3 rows of small integers) until stopped or its request budget or
deadline is spent; every attempt is recorded with its start and end time. `StatusTimeline` polls
`GET /v1/models/{name}` in a side thread and records each answer with the interval it was taken in.

`available_windows` turns the timeline into, per version, the intervals in which it was AVAILABLE
(widest bounds the samples allow) and the intervals in which it was AVAILABLE for certain (narrowest).
"""

from __future__ import annotations

import http.client
import itertools
import json
import random
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    """One predict attempt: rows sent, HTTP status (None if the connection failed), body or error."""

    started: float
    ended: float
    rows: tuple[tuple[int, int], ...]
    status: int | None
    body: bytes
    error: str = ""


class PredictLoad:
    """`threads` clients sending predicts to `path` until `stop()`, `max_requests` or `deadline_s`."""

    def __init__(self, port: int, path: str, threads: int = 16, max_requests: int = 60_000,
                 deadline_s: float = 150.0, retry_pause_s: float = 0.05) -> None:
        self.port, self.path = port, path
        self.threads = threads
        self.deadline = time.monotonic() + deadline_s
        self.retry_pause_s = retry_pause_s
        self._budget = iter(range(max_requests))
        self._stop = threading.Event()
        self._results: list[list[Outcome]] = [[] for _ in range(threads)]
        self._workers = [threading.Thread(target=self._run, args=(i,), daemon=True, name=f"load-{i}")
                         for i in range(threads)]

    def start(self) -> PredictLoad:
        for worker in self._workers:
            worker.start()
        return self

    @property
    def sent(self) -> int:
        return sum(len(r) for r in self._results)

    def wait_for(self, count: int, timeout_s: float) -> None:
        """Return once `count` requests were attempted (or the timeout passed)."""
        deadline = time.monotonic() + timeout_s
        while self.sent < count and time.monotonic() < deadline and any(w.is_alive() for w in self._workers):
            time.sleep(0.05)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for worker in self._workers:
            worker.join(60)
        return sorted(itertools.chain.from_iterable(self._results), key=lambda o: o.started)

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        out = self._results[index]
        conn: http.client.HTTPConnection | None = None
        while (not self._stop.is_set() and time.monotonic() < self.deadline
               and next(self._budget, None) is not None):
            rows = tuple((rng.randrange(1000), rng.randrange(1000)) for _ in range(rng.randint(1, 3)))
            body = json.dumps({"instances": [list(r) for r in rows]}).encode()
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("POST", self.path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                data = response.read()
                out.append(Outcome(started, time.monotonic(), rows, response.status, data))
            except (OSError, http.client.HTTPException) as error:
                failure = f"{type(error).__name__}: {error}"
                out.append(Outcome(started, time.monotonic(), rows, None, b"", failure))
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(self.retry_pause_s)
        if conn is not None:
            conn.close()


@dataclass(frozen=True)
class Sample:
    sent: float
    received: float
    states: dict[int, str]


class StatusTimeline:
    """Polls a model's status every `interval_s` in a side thread (bounded by `deadline_s`).

    Under load the side thread can be starved (16 client threads share this process's interpreter
    lock), so a version may be AVAILABLE only between two of its samples. Whoever waits for a state
    therefore waits through `wait_states`, whose polls are samples too, and `stop()` takes one last
    sample after the load stopped: every state a test waited for, and the state at the end, is on
    the timeline."""

    def __init__(self, port: int, model: str, interval_s: float = 0.02, deadline_s: float = 600.0) -> None:
        self.port, self.path = port, f"/v1/models/{model}"
        self.interval_s = interval_s
        self.deadline = time.monotonic() + deadline_s
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="status-timeline")

    def start(self) -> StatusTimeline:
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        """Stop polling, take a last sample, and return every sample in the order they were sent."""
        self._stop.set()
        self._thread.join(30)
        conn = self._connect()
        try:
            self._sample(conn)
        except (OSError, http.client.HTTPException, ValueError, KeyError):
            pass
        finally:
            conn.close()
        with self._lock:
            return sorted(self._samples, key=lambda s: s.sent)

    def wait_states(self, expected: dict[int, str], timeout_s: float) -> None:
        """Poll (from the caller's thread, each answer recorded as a sample) until the status has (at
        least) these {version: state} entries; AssertionError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        conn, last = self._connect(), {}
        try:
            while time.monotonic() < deadline:
                try:
                    last = self._sample(conn)
                except (OSError, http.client.HTTPException, ValueError, KeyError):
                    conn.close()
                    conn = self._connect()
                if all(last.get(v) == s for v, s in expected.items()):
                    return
                time.sleep(0.05)
        finally:
            conn.close()
        raise AssertionError(f"the status never showed {expected} within {timeout_s} s; last {last}")

    def _connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def _sample(self, conn: http.client.HTTPConnection) -> dict[int, str]:
        """One GET of the status, recorded and returned (an error answer, e.g. NOT_FOUND, as no
        version at all)."""
        sent = time.monotonic()
        conn.request("GET", self.path)
        response = conn.getresponse()
        data = response.read()
        states = ({int(s["version"]): s["state"] for s in json.loads(data)["model_version_status"]}
                  if response.status == 200 else {})
        with self._lock:
            self._samples.append(Sample(sent, time.monotonic(), states))
        return states

    def _run(self) -> None:
        conn = self._connect()
        while not self._stop.is_set() and time.monotonic() < self.deadline:
            try:
                self._sample(conn)
            except (OSError, http.client.HTTPException, ValueError, KeyError):
                conn.close()
                conn = self._connect()
            self._stop.wait(self.interval_s)
        conn.close()


@dataclass(frozen=True)
class Window:
    """One run of consecutive AVAILABLE samples of a version."""

    version: int
    outer: tuple[float, float]    # it may have been AVAILABLE anywhere in here
    certain: tuple[float, float]  # it was AVAILABLE during all of this
    first_seen: float             # when the first AVAILABLE sample of the run was answered


def available_windows(samples: list[Sample]) -> list[Window]:
    """Per version, every run of consecutive AVAILABLE samples (in the order they were sent), with outer
    and certain bounds. Samples from concurrent pollers may overlap in time: the bounds stay sound for
    a version whose AVAILABLE time is one interval (a version number that is never reused)."""
    versions = sorted({v for s in samples for v in s.states})
    windows = []
    for version in versions:
        run_start = None
        for i, sample in enumerate([*samples, None]):
            available = sample is not None and sample.states.get(version) == "AVAILABLE"
            if available and run_start is None:
                run_start = i
            elif not available and run_start is not None:
                first, last = samples[run_start], samples[i - 1]
                lower = samples[run_start - 1].sent if run_start > 0 else float("-inf")
                upper = sample.received if sample is not None else float("inf")
                windows.append(Window(version, (lower, upper), (first.received, last.sent), first.received))
                run_start = None
    return windows
