"""Overload on a live server (issue 9, bug 5), with batching on and off.

Past `--max_pending_requests` a request is answered 503 with a JSON error at once, so the requests
that were accepted all complete; and a request whose deadline (`--rest_api_timeout_in_ms`) passed
while it waited is dropped without running the model (one whose model call had started is stopped
by the session's own timeout). The model counts its own calls, so the
answers themselves show which work ran; the server's Prometheus counters must agree.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from tests.server.grpc_harness import GrpcServer, predict_request, start_grpc_server
from tests.server.harness import (
    BATCHING_MODES,
    Server,
    error_of,
    metric_value,
    ok_json,
    start_server,
    wait_for,
)

MAX_PENDING = 4
CLIENTS = 24
REQUESTS_PER_CLIENT = 3
WAIT = 60.0
SHORT_DEADLINE = 2.0  # seconds: the gRPC deadline of a request that waits behind a gated call


def start_slow_server(root, micros: int, mode: str, *flags: str) -> Server:
    from tests.server.savedmodels import export_slow_rows

    export_slow_rows(root / "slow" / "1", micros, count_calls=True)
    return start_server(["--model_name=slow", f"--model_base_path={root / 'slow'}", "--enable_prometheus",
                         "--file_system_poll_wait_seconds=0", *flags], root / "server.log", batching=mode)


@pytest.fixture(scope="module", params=BATCHING_MODES)
def crowded(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Server]:
    server = start_slow_server(tmp_path_factory.mktemp("crowded"), 100_000, request.param,
                               f"--max_pending_requests={MAX_PENDING}", "--rest_api_num_threads=2",
                               "--rest_api_timeout_in_ms=60000")
    yield server
    server.stop()


@pytest.fixture(scope="module", params=BATCHING_MODES)
def impatient(tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> Iterator[tuple[GrpcServer, Path]]:
    """One gRPC worker (batching off) or one model call at a time (batching on), so a second request
    waits behind the first, in the worker pool or in the batch queue; its model (x > 0) runs until
    the gate file exists. Yields the server and that gate."""
    from tests.server.savedmodels import export_gated_rows

    root = tmp_path_factory.mktemp("impatient")
    export_gated_rows(root / "slow" / "1", root / "gate", count_calls=True)
    flags = ["--grpc_max_threads=1"]
    if request.param == "batching_on":
        (root / "batching.config").write_text("num_batch_threads { value: 1 }")
        flags = ["--grpc_max_threads=2", f"--batching_parameters_file={root / 'batching.config'}"]
    server = start_grpc_server(["--model_name=slow", f"--model_base_path={root / 'slow'}",
                                "--enable_prometheus", "--file_system_poll_wait_seconds=0", *flags],
                               root / "server.log", batching=request.param)
    yield server, root / "gate"
    (root / "gate").touch()  # no call left waiting
    server.stop()


def predict(server: Server, x: float):
    return server.post("/v1/models/slow:predict", {"instances": [[x]]})


def pending(server: Server) -> float:
    return metric_value(server, "tensorflow_serving_pending_requests")


def dropped(server: Server, reason: str) -> float:
    return metric_value(server, "tensorflow_serving_dropped_request_count_total", model_name="slow",
                        reason=reason)


def test_past_the_limit_requests_are_shed_with_503_and_accepted_ones_all_complete(crowded: Server) -> None:
    shed_before = dropped(crowded, "overloaded")

    def client(number: int) -> list[tuple[int, str]]:
        outcomes = []
        for i in range(REQUESTS_PER_CLIENT):
            x = float(number * 10 + i)
            response = predict(crowded, x)
            if response.status_code == 200:
                assert ok_json(response)["predictions"][0]["y"] == [2 * x]
                outcomes.append((200, ""))
            else:
                outcomes.append((response.status_code, error_of(response, response.status_code)))
        return outcomes

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        outcomes = [o for result in pool.map(client, range(CLIENTS), timeout=WAIT * 4) for o in result]
    statuses = Counter(status for status, _ in outcomes)
    completed, shed = statuses[200], statuses[503]
    assert set(statuses) <= {200, 503}, statuses  # no 504 or 500: accepted work is never lost
    assert completed + shed == CLIENTS * REQUESTS_PER_CLIENT
    assert shed > 0, "24 clients against a limit of 4 were never refused"
    assert completed >= MAX_PENDING, statuses
    assert all("overloaded" in message and "--max_pending_requests" in message
               for status, message in outcomes if status == 503)
    assert dropped(crowded, "overloaded") - shed_before == shed
    wait_for(lambda: pending(crowded) == 0, WAIT)


def test_a_request_whose_deadline_passed_while_waiting_is_never_run(
        impatient: tuple[GrpcServer, Path]) -> None:
    """The first call (a long gRPC deadline) runs until the test opens its gate; the second waits
    behind it and its short deadline passes while it waits (the client sees DEADLINE_EXCEEDED with
    the gate still closed). Once the gate opens the first ends with its answer and the second is
    dropped without running the model."""
    impatient, gate = impatient
    server = impatient.server
    gate.unlink(missing_ok=True)
    baseline = ok_json(predict(server, 0.0))["predictions"][0]["calls"]  # x <= 0: not gated
    drops_before = dropped(server, "deadline_exceeded")
    results: dict[str, object] = {}

    def send(key: str, x: float, timeout: float) -> None:
        try:
            results[key] = impatient.prediction.Predict(predict_request("slow", [x], shape=[1, 1]),
                                                        timeout=timeout)
        except grpc.RpcError as error:
            results[key] = error

    first = threading.Thread(target=send, args=("first", 2.0, WAIT))
    # waits behind the first call; its deadline only has to outlast its trip to the server
    second = threading.Thread(target=send, args=("second", 3.0, SHORT_DEADLINE))
    try:
        first.start()
        wait_for(lambda: pending(server) == 1, WAIT)  # the first call runs now, held at the gate
        second.start()
        second.join(WAIT)
        assert results["second"].code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert first.is_alive()  # the second's deadline passed while the first still ran
    finally:
        gate.touch()
    first.join(WAIT)
    assert list(results["first"].outputs["y"].float_val) == [4.0]
    wait_for(lambda: dropped(server, "deadline_exceeded") - drops_before == 1, WAIT)
    wait_for(lambda: pending(server) == 0, WAIT)
    # The first call ran to its end; the second never reached the model.
    assert ok_json(predict(server, -1.0))["predictions"][0]["calls"] == baseline + 2
