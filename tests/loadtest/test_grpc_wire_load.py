"""The load tool's own HTTP/2 gRPC client against the real server on loopback: an unknown model is
counted as `gRPC NOT_FOUND` with the server's own message (the one grpcio reads), a request larger
than HTTP/2's default 65,535-byte windows is answered, a deadline shorter than the model needs is
counted as `timeout`, a closed port as `connection refused`, and a server killed mid-level ends the
level with what it measured instead of hanging."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import grpc

from pipeline.client.rest import ServingClient
from pipeline.loadtest.clients import GRPC, LevelPlan, Target
from pipeline.loadtest.results import OK, WorkerReport
from pipeline.loadtest.spec import LoadSpec
from pipeline.loadtest.target import PREDICT_METHOD, grpc_request
from pipeline.loadtest.worker import run_level
from tests.loadtest.conftest import MODEL, Served
from tests.support.net import free_port, stop_process, wait_for

ROWS = 10_000


def payload(served: Served, model: str = MODEL, rows: int = 1) -> bytes:
    metadata = ServingClient(served.url, timeout=30).metadata(MODEL)
    body = {"instances": [[float(i), 1.0] for i in range(rows)]}
    return grpc_request(LoadSpec(url=served.url, model=model), body, metadata)


def measure(port: int, data: bytes, clients: int = 2, timeout_s: float = 30.0, duration_s: float = 600.0,
            stop: Any = None, progress: Any = None, until: Any = None) -> WorkerReport:
    """One level on ``port``. With ``until`` (a test of the tally's counts by kind) the level ends as
    soon as its measured window holds what the test looks for (a busy machine only makes it longer)."""
    stop = stop or threading.Event()
    if until is not None:
        def progress(tally: Any) -> None:
            if until(tally.kinds):
                stop.set()

    plan = LevelPlan(Target(GRPC, "127.0.0.1", port, data, method=PREDICT_METHOD), clients, None, time.time(),
                     0.2, duration_s, timeout_s)
    return asyncio.run(run_level(plan, stop, progress))


def test_an_unknown_model_is_counted_as_not_found_with_the_servers_message(server: Served) -> None:
    data = payload(server, model="nope")
    with grpc.insecure_channel(server.grpc) as channel:
        call = channel.unary_unary(PREDICT_METHOD)
        try:
            call(data, timeout=30)
            raise AssertionError("the server answered a Predict for an unknown model")
        except grpc.RpcError as error:
            expected = error.details()
    report = measure(server.grpc_port, data, until=lambda kinds: sum(kinds.values()) >= 3)
    assert set(report.kinds) == {"gRPC NOT_FOUND"} and report.answered == report.kinds["gRPC NOT_FOUND"] > 0
    assert report.examples["gRPC NOT_FOUND"] == expected[:300]


def test_a_request_larger_than_the_default_windows_is_answered(server: Served) -> None:
    data = payload(server, rows=ROWS)
    assert len(data) > 65_535
    before = server.answered_ok()
    report = measure(server.grpc_port, data, until=lambda kinds: sum(kinds.values()) >= 3)
    assert set(report.kinds) == {OK} and report.answered > 0
    assert server.answered_ok() - before >= report.answered


def test_a_deadline_shorter_than_the_model_needs_is_a_timeout(server: Served) -> None:
    report = measure(server.grpc_port, payload(server, rows=ROWS), timeout_s=0.001,
                     until=lambda kinds: kinds.get("timeout", 0) >= 3)
    assert report.kinds.get("timeout", 0) > 0 and set(report.kinds) <= {OK, "timeout"}


def test_a_closed_port_is_connection_refused() -> None:
    report = measure(free_port(), b"", until=lambda kinds: sum(kinds.values()) >= 3)
    assert set(report.kinds) == {"connection refused"} and report.answered == 0


def test_a_server_killed_mid_level_ends_the_level_with_what_it_measured(own_server) -> None:
    served = own_server()
    stop = threading.Event()
    counts = {"ok": 0, "errors": 0}
    found: list[WorkerReport] = []

    def progress(tally: Any) -> None:
        counts["ok"] = tally.kinds.get(OK, 0)
        counts["errors"] = sum(n for kind, n in tally.kinds.items() if kind != OK)

    data = payload(served)
    runner = threading.Thread(target=lambda: found.append(
        measure(served.grpc_port, data, clients=4, duration_s=600, stop=stop, progress=progress)))
    runner.start()
    try:
        wait_for(lambda: counts["ok"] > 0, 120)
        served.process.kill()
        served.process.wait(30)
        wait_for(lambda: counts["errors"] > 0, 120)
    finally:
        stop.set()
        runner.join(120)
        stop_process(served.process)
    assert not runner.is_alive()
    (report,) = found
    assert report.kinds[OK] > 0
    assert set(report.kinds) - {OK} and set(report.kinds) <= {OK, "connection reset", "connection refused"}
