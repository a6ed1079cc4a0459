"""With TF Serving's default flags the answers are TF Serving's (issue 23 items 1 and 6).

`tensorflow_model_server` runs every request as its own session run unless `--enable_batching`.
Two models whose answers change when requests are merged, hit concurrently by a server started with
default flags: `minus_batch_mean` (y = x - mean over the batch: every request of one row must get 0)
and `counter` (each call adds one to a count: 160 requests must add 160).
The other defaults and checks are the binary's too: model `default`, no REST port, no base path,
absolute base paths and a `model_platform` required, 5 load retries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.server.grpc_harness import predict_request
from tests.server.harness import (
    REPO,
    Models,
    Server,
    free_port,
    install_version,
    metric_value,
    ok_json,
    start_server,
    wait_for,
)
from tests.support.net import stop_process

THREADS = 16
REQUESTS = 160
CONFIG = """
model_config_list {{
  config {{ name: 'mean' base_path: '{root}/mean' model_platform: 'tensorflow' }}
  config {{ name: 'counter' base_path: '{root}/counter' model_platform: 'tensorflow' }}
}}
"""


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with no flags but the model config (and the test harness's ports)."""
    from tests.server.savedmodels import export_minus_batch_mean, export_slow_rows

    root = tmp_path_factory.mktemp("defaults")
    export_minus_batch_mean(root / "mean" / "1", 20_000)
    export_slow_rows(root / "counter" / "1", 20_000, count_calls=True)
    (root / "models.config").write_text(CONFIG.format(root=root))
    server = start_server([f"--model_config_file={root / 'models.config'}"], root / "server.log")
    yield server
    server.stop()


def concurrently(server: Server, model: str, values: list[float]) -> list[dict]:
    def send(x: float) -> dict:
        return ok_json(server.post(f"/v1/models/{model}:predict", {"instances": [[x]]}))

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(send, values, timeout=300))


def test_batching_is_off_by_default(defaults: Server) -> None:
    assert "Batching disabled" in defaults.log()


def test_a_batch_dependent_model_answers_each_request_alone(defaults: Server) -> None:
    answers = concurrently(defaults, "mean", [float(i) for i in range(REQUESTS)])
    wrong = [a for a in answers if a != {"predictions": [[0.0]]}]
    assert not wrong, f"{len(wrong)} of {REQUESTS} answers mixed other requests' rows: {wrong[:3]}"


def test_a_stateful_model_counts_every_request_as_its_own_call(defaults: Server) -> None:
    """The count is read alone before and after the burst: inside it, two calls running at once may
    read the same count (the model adds atomically but reads after), so only the totals are exact."""
    def calls_alone() -> int:
        answer = ok_json(defaults.post("/v1/models/counter:predict", {"instances": [[-1.0]]}))
        return answer["predictions"][0]["calls"]

    before = calls_alone()
    answers = concurrently(defaults, "counter", [1.0] * REQUESTS)
    assert all(len(a["predictions"]) == 1 for a in answers)
    merged = before + REQUESTS + 1 - calls_alone()
    assert merged == 0, f"{merged} of {REQUESTS} concurrent requests shared a model call"


def run_server(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.serving", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_by_default_the_model_is_default_and_only_grpc_is_served(models: Models, tmp_path: Path) -> None:
    """tensorflow_model_server's defaults: model name `default`, `--rest_api_port` 0 (no REST)."""
    install_version(models.half_plus_two, tmp_path / "hpt", "1")
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "pipeline.serving", f"--port={port}",
                                    f"--model_base_path={tmp_path / 'hpt'}"], cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

        def answers() -> object:
            assert process.poll() is None, log_path.read_text()
            try:
                return stub.Predict(predict_request("default", [1.0]), timeout=5)
            except grpc.RpcError:
                return None

        answer = wait_for(answers, 120)
        assert list(answer.outputs["y"].float_val) == [2.5]
        assert "REST API is off (--rest_api_port=0)" in log_path.read_text()
        assert "Exporting HTTP/REST API" not in log_path.read_text()
    finally:
        channel.close()
        stop_process(process)


@pytest.mark.parametrize(("config", "message"), [
    ("model_config_list { config { name: 'm' base_path: '/models/m' } }",
     "Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
     "ModelServerConfig::model_platform."),
    ("model_config_list { config { name: 'm' base_path: 'models/m' model_platform: 'tensorflow' } }",
     "Expected model m to have an absolute path or URI; found: models/m"),
])
def test_configs_tf_serving_refuses_do_not_start(tmp_path: Path, config: str, message: str) -> None:
    (tmp_path / "models.config").write_text(config)
    done = run_server(f"--model_config_file={tmp_path / 'models.config'}", "--rest_api_port=0",
                      f"--port={free_port()}")
    assert done.returncode == 1
    assert message in done.stderr


def test_no_base_path_and_a_relative_one_do_not_start(tmp_path: Path) -> None:
    done = run_server(f"--port={free_port()}")
    assert done.returncode == 1
    assert ("Both server_options.model_base_path and server_options.model_config_file are empty!"
            in done.stderr)
    done = run_server(f"--port={free_port()}", "--model_base_path=models/linear_model")
    assert done.returncode == 1
    assert "Expected model default to have an absolute path or URI; found: models/linear_model" in done.stderr


def test_a_failed_load_is_retried_five_times_by_default(tmp_path: Path) -> None:
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    server = start_server(["--model_name=broken", f"--model_base_path={tmp_path / 'broken'}",
                           "--load_retry_interval_micros=100000", "--enable_prometheus",
                           "--file_system_poll_wait_seconds=0"], tmp_path / "server.log")
    try:
        def state() -> str:
            return ok_json(server.get("/v1/models/broken"))["model_version_status"][0]["state"]

        wait_for(lambda: state() == "END", 120)
        failures = metric_value(server, ":tensorflow:cc:saved_model:load_attempt_count", status="fail")
        assert failures == 6  # the first attempt and 5 retries
        assert "retry 5 of 5" in server.log()
    finally:
        server.stop()
