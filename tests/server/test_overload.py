"""Overload on a live server (issue 9, bug 5), with batching on and off.

Past `--max_pending_requests` a request is answered 503 with a JSON error at once, so the requests
that were accepted all complete; and a request whose deadline (`--rest_api_timeout_in_ms`) passed
while it waited is dropped without running the model. The model counts its own calls, so the
answers themselves show which work ran; the server's Prometheus counters must agree.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

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
              request: pytest.FixtureRequest) -> Iterator[tuple[Server, Path]]:
    """A server whose model runs until its gate file exists (x > 0), and that gate."""
    from tests.server.savedmodels import export_gated_rows

    threads = "1" if request.param == "batching_off" else "2"  # with batching, B waits in the batch queue
    root = tmp_path_factory.mktemp("impatient")
    export_gated_rows(root / "slow" / "1", root / "gate", count_calls=True)
    server = start_server(["--model_name=slow", f"--model_base_path={root / 'slow'}", "--enable_prometheus",
                           "--file_system_poll_wait_seconds=0", "--rest_api_timeout_in_ms=500",
                           f"--rest_api_num_threads={threads}"], root / "server.log", batching=request.param)
    yield server, root / "gate"
    (root / "gate").touch()
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


def test_a_request_whose_deadline_passed_while_waiting_is_never_run(impatient: tuple[Server, Path]) -> None:
    """The first call runs until the test opens its gate; the second waits behind it. Both are
    answered 504 at their 500 ms deadline; once the gate opens, the first ends and the second, whose
    deadline passed while it waited, is dropped without running the model."""
    impatient, gate = impatient
    gate.unlink(missing_ok=True)
    baseline = ok_json(predict(impatient, 0.0))["predictions"][0]["calls"]  # x <= 0: not gated
    drops_before = dropped(impatient, "deadline_exceeded")
    results: dict[str, object] = {}

    def send(key: str, x: float) -> None:
        results[key] = predict(impatient, x)

    first = threading.Thread(target=send, args=("first", 2.0))
    second = threading.Thread(target=send, args=("second", 3.0))  # waits behind the first call
    try:
        first.start()
        wait_for(lambda: pending(impatient) == 1, WAIT)
        second.start()
        wait_for(lambda: pending(impatient) == 2, WAIT)
        first.join(WAIT)
        second.join(WAIT)
        for key in ("first", "second"):
            assert "timed out after 500 ms" in error_of(results[key], 504)
    finally:
        gate.touch()
    wait_for(lambda: dropped(impatient, "deadline_exceeded") - drops_before == 1, WAIT)
    wait_for(lambda: pending(impatient) == 0, WAIT)
    # The first call ran to its end (it had started); the second never reached the model.
    assert ok_json(predict(impatient, -1.0))["predictions"][0]["calls"] == baseline + 2
