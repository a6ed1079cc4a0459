"""Server-side batching on a live server (`--enable_batching`): concurrent predicts are merged into one
model call and every request still gets exactly its own answer; batches show in the metrics; a full
queue answers 503 at once; requests of different widths run in separate batches; what TF Serving's
BatchingSession refuses is refused with its words.

Two servers: `batching` (`--enable_batching` plus a parameters file, Prometheus on) and `tiny`
(a queue of one batch of one row), so the queue limit is reached on purpose. Their `slow` model is
gated (tests/server/savedmodels.py `export_gated_rows`): a call runs until the test creates the gate
file, so "while a call runs" never depends on how fast the machine is. Every request has a timeout
and every test sends a fixed number of requests. Events are ordered by polling the server's own
gauges (`tensorflow_serving_batch_running_calls`, `..._queued_tasks`), never by sleeping.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.serving.batching import QUEUE_FULL_MESSAGE
from tests.server.harness import (
    Models,
    Server,
    error_of,
    install_version,
    metric_value,
    ok_json,
    start_server,
    wait_for,
)

WAIT = 60  # seconds: the bound of every wait for the server's gauges (a busy 2-core machine)
INPUT_ROWS = ":tensorflow:serving:batching_session:input_batch_size_sum"  # rows of every model call
QUEUING_COUNT = ":tensorflow:serving:batching_session:queuing_latency_count"  # requests that waited


BATCHING_CONFIG = """
model_config_list {{
  config {{ name: 'linear' base_path: '{root}/linear' model_platform: 'tensorflow' }}
  config {{ name: 'slow' base_path: '{root}/slow' model_platform: 'tensorflow' }}
  config {{ name: 'identity' base_path: '{root}/identity' model_platform: 'tensorflow' }}
}}
"""


@pytest.fixture(scope="module")
def batching_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The batching server's folder; `gate` in it ends the slow model's calls."""
    return tmp_path_factory.mktemp("batching")


@pytest.fixture(scope="module")
def batching(models: Models, batching_root: Path) -> Iterator[Server]:
    root = batching_root
    install_version(models.linear_keras, root / "linear", "1")
    install_version(models.identity, root / "identity", "1")
    from tests.server.savedmodels import export_gated_rows

    export_gated_rows(root / "slow" / "1", root / "gate")
    (root / "models.config").write_text(BATCHING_CONFIG.format(root=root))
    (root / "batching.config").write_text(
        "max_batch_size { value: 64 } batch_timeout_micros { value: 0 } "
        "max_enqueued_batches { value: 1000 } num_batch_threads { value: 1 }")
    server = start_server([
        f"--model_config_file={root / 'models.config'}", "--enable_batching",
        f"--batching_parameters_file={root / 'batching.config'}",
        "--enable_prometheus", "--file_system_poll_wait_seconds=0",
    ], root / "server.log")
    yield server
    (root / "gate").touch()  # no call left waiting
    server.stop()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """The tiny-queue server and the gate file of its slow model."""
    root = tmp_path_factory.mktemp("tiny_queue")
    from tests.server.savedmodels import export_gated_rows

    export_gated_rows(root / "slow" / "1", root / "gate")
    (root / "batching.config").write_text(
        "max_batch_size { value: 1 } max_enqueued_batches { value: 1 } num_batch_threads { value: 1 }")
    server = start_server([
        "--model_name=slow", f"--model_base_path={root / 'slow'}", "--enable_batching",
        f"--batching_parameters_file={root / 'batching.config'}", "--file_system_poll_wait_seconds=0",
        "--enable_prometheus",
    ], root / "server.log")
    yield server, root / "gate"
    (root / "gate").touch()
    server.stop()


def predict(server: Server, model: str, body: dict):
    return server.post(f"/v1/models/{model}:predict", body)  # the harness times out after 30 s


def histogram(server: Server, name: str, model: str) -> tuple[float, float]:
    """(count, sum) of a histogram for one model, from the Prometheus text."""
    text = server.get("/monitoring/prometheus/metrics").text
    values = {}
    for part in ("count", "sum"):
        match = re.search(rf'^{name}_{part}{{model_name="{model}"}} (\S+)$', text, re.MULTILINE)
        values[part] = float(match.group(1)) if match else 0.0
    return values["count"], values["sum"]


def gauge(server: Server, name: str) -> float:
    return metric_value(server, f"tensorflow_serving_batch_{name}")


def test_batching_is_on_with_enable_batching(batching: Server) -> None:
    assert "Batching enabled" in batching.log()
    assert "max_batch_size=64" in batching.log()


def test_start_up_log_names_the_active_fast_paths(batching: Server) -> None:
    """Both private-API paths say at start-up that they are in use (session_callable, uvicorn_protocol)."""
    log = batching.log()
    assert "Session callables active" in log
    assert "uvicorn httptools with coalesced writes" in log


def test_concurrent_requests_with_different_row_counts_get_exactly_their_own_answers(
        batching: Server) -> None:
    """The tutorial model y = 2a - b + 3; 48 requests from 24 threads, rows and columns mixed."""

    def case(i: int) -> tuple[dict, object]:
        values = [[float(i * 10 + r), float(r)] for r in range(1 + i % 4)]
        expected = [[2 * a - b + 3] for a, b in values]
        if i % 2:
            return {"inputs": values}, {"outputs": expected}
        return {"instances": values}, {"predictions": expected}

    cases = [case(i) for i in range(48)]
    with ThreadPoolExecutor(max_workers=24) as pool:
        responses = list(pool.map(lambda c: predict(batching, "linear", c[0]), cases, timeout=60))
    for (_, expected), response in zip(cases, responses, strict=True):
        assert ok_json(response) == expected


def test_requests_queued_behind_a_running_call_are_merged_into_one(batching: Server,
                                                                  batching_root: Path) -> None:
    """While one call of the slow model runs (held at its gate), 8 more requests queue; once it
    ends they run as one batch, and each gets its own rows' answer."""
    gate = batching_root / "gate"
    gate.unlink(missing_ok=True)
    count_before, sum_before = histogram(batching, "tensorflow_serving_batch_requests", "slow")
    rows_before = metric_value(batching, INPUT_ROWS)
    waited_before = metric_value(batching, QUEUING_COUNT, thread_pool_name="batch_threads")
    first = threading.Thread(target=predict, args=(batching, "slow", {"instances": [[100.0]]}))
    bodies = [{"instances": [[float(i + 1)]] * (1 + i % 3)} for i in range(8)]
    try:
        first.start()
        wait_for(lambda: gauge(batching, "running_calls") == 1, WAIT)  # the first call runs now
        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(predict, batching, "slow", body) for body in bodies]
            wait_for(lambda: gauge(batching, "queued_tasks") == len(bodies), WAIT)  # all 8 wait behind it
            assert first.is_alive()  # still held at the gate
            gate.touch()
            responses = [future.result(WAIT) for future in futures]
    finally:
        gate.touch()
    first.join(WAIT)
    for body, response in zip(bodies, responses, strict=True):
        assert ok_json(response) == {"predictions": [[2 * row[0]] for row in body["instances"]]}
    count, total = histogram(batching, "tensorflow_serving_batch_requests", "slow")
    calls, requests = count - count_before, total - sum_before
    assert requests == 9
    assert calls == 2, "the running call, then the 8 queued requests as one batch"
    # TF Serving's batching metrics (one server, one test at a time: the differences are this test's)
    rows_total = metric_value(batching, INPUT_ROWS) - rows_before
    assert rows_total == 1 + sum(len(body["instances"]) for body in bodies)
    waited = metric_value(batching, QUEUING_COUNT, thread_pool_name="batch_threads") - waited_before
    assert waited == requests  # each request's wait for its batch, in microseconds


def test_requests_of_different_widths_run_in_separate_batches_and_scalars_are_refused(
        batching: Server) -> None:
    """Inputs of different widths all succeed (each width its own batch); a rank-0 input is refused
    as TF Serving's BatchingSession refuses it."""
    scalar = predict(batching, "identity", {"signature_name": "float", "inputs": 2.5})
    assert error_of(scalar, 400) == "Batching Run() input tensors must have at least one dimension"
    bodies = [{"signature_name": "float", "instances": [[float(i)] * (1 + i % 3)]} for i in range(12)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda body: predict(batching, "identity", body), bodies, timeout=60))
    for body, response in zip(bodies, responses, strict=True):
        assert ok_json(response) == {"predictions": body["instances"]}


def test_a_request_larger_than_max_batch_size_is_refused(batching: Server) -> None:
    response = predict(batching, "linear", {"instances": [[1.0, 2.0]] * 65})
    assert error_of(response, 400) == "Task size 65 is larger than maximum input batch size 64"


def test_bad_requests_in_a_batch_fail_alone(batching: Server) -> None:
    """A shape the graph refuses is that request's 400 (TF's own message, as TF Serving answers it);
    its neighbours still get their answers."""
    bodies = [{"instances": [[1.0, 2.0, 3.0]]} if i == 3 else {"instances": [[float(i), 0.0]]}
              for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda body: predict(batching, "linear", body), bodies, timeout=60))
    assert "Matrix size-incompatible: In[0]: [1,3], In[1]: [2,1]" in error_of(responses[3], 400)
    for i, response in enumerate(responses):
        if i != 3:
            assert ok_json(response) == {"predictions": [[2.0 * i + 3.0]]}


def test_a_full_batch_queue_answers_503_at_once(tiny: tuple[Server, Path]) -> None:
    """Queue of one batch of one row: one request runs (held at its gate), one waits, the third is
    refused while the first still runs, i.e. without waiting for room."""
    server, gate = tiny
    gate.unlink(missing_ok=True)
    results: dict[str, object] = {}

    def send(key: str, value: float) -> None:
        results[key] = predict(server, "slow", {"instances": [[value]]})

    running = threading.Thread(target=send, args=("running", 1.0))
    waiting = threading.Thread(target=send, args=("waiting", 2.0))
    try:
        running.start()
        wait_for(lambda: gauge(server, "running_calls") == 1, WAIT)  # running in the model now
        waiting.start()
        wait_for(lambda: gauge(server, "queued_tasks") == 1, WAIT)  # in the queue now
        refused = predict(server, "slow", {"instances": [[3.0]]})
        assert QUEUE_FULL_MESSAGE in error_of(refused, 503)
        assert "running" not in results and running.is_alive()  # the gate is still closed
    finally:
        gate.touch()
    running.join(WAIT)
    waiting.join(WAIT)
    assert ok_json(results["running"]) == {"predictions": [[2.0]]}
    assert ok_json(results["waiting"]) == {"predictions": [[4.0]]}
