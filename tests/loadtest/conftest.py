"""Real servers for the load tool's tests: the tutorial's Keras model behind `python -m pipeline.serving`
on free loopback ports, started with every flag explicit (the server's defaults are not the test's
business: batching off, REST and gRPC ports, Prometheus on)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from pipeline.client.server_metrics import INFERENCE_APIS
from tests.support.net import free_port, stop_process, wait_for

ROOT = Path(__file__).resolve().parents[2]
MODEL = "linear"
START_TIMEOUT_S = 180.0
LATENCY_COUNT = ":tensorflow:serving:request_latency_count"


@dataclass
class Served:
    """A running server: its REST URL, gRPC target and process."""

    process: subprocess.Popen
    port: int
    grpc_port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def answered_ok(self) -> float:
        """Inference requests (predict, classify, regress) for the model the server has answered OK
        so far, from its own metrics: TF Serving's request_latency counts OK requests by API, while
        its request_count also counts the status and metadata requests the tool sends first."""
        text = requests.get(f"{self.url}/monitoring/prometheus/metrics", timeout=30).text
        samples = (sample for family in text_string_to_metric_families(text) for sample in family.samples)
        return sum(sample.value for sample in samples
                   if sample.name == LATENCY_COUNT and sample.labels.get("model_name") == MODEL
                   and sample.labels.get("API", "").lower() in INFERENCE_APIS)


@pytest.fixture(scope="session")
def base_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder with version 1 of the tutorial model (w = [2, -1], b = 3)."""
    from tests.server import savedmodels
    from tests.server.harness import install_version

    template = savedmodels.export_linear_keras(tmp_path_factory.mktemp("template") / "linear")
    base = tmp_path_factory.mktemp("models") / MODEL
    install_version(template, base, "1")
    return base


def start(base: Path, log: Path, *extra: str) -> Served:
    """`python -m pipeline.serving` with every flag given, once the model is AVAILABLE."""
    port, grpc_port = free_port(), free_port()
    argv = [sys.executable, "-m", "pipeline.serving", f"--rest_api_port={port}", "--rest_api_host=127.0.0.1",
            f"--port={grpc_port}", f"--model_name={MODEL}", f"--model_base_path={base}",
            "--enable_batching=false", "--enable_prometheus", "--file_system_poll_wait_seconds=0", *extra]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    with log.open("wb") as out:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    served = Served(process, port, grpc_port, log)

    def available() -> bool:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            answer = requests.get(f"{served.url}/v1/models/{MODEL}", timeout=2)
        except requests.RequestException:
            return False
        return answer.ok and answer.json()["model_version_status"][0]["state"] == "AVAILABLE"

    try:
        wait_for(available, START_TIMEOUT_S, interval=0.2)
    except BaseException:
        stop_process(process)
        raise
    return served


@pytest.fixture(scope="session")
def server(base_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server shared by the tests that do not stop it."""
    served = start(base_path, tmp_path_factory.mktemp("server") / "server.log")
    yield served
    stop_process(served.process)


@pytest.fixture
def own_server(base_path: Path, tmp_path: Path) -> Iterator[Callable[[], Served]]:
    """A server of the test's own (for tests that take it down)."""
    started: list[Served] = []

    def make() -> Served:
        started.append(start(base_path, tmp_path / f"server-{len(started)}.log"))
        return started[-1]

    yield make
    for served in started:
        stop_process(served.process)


def run_cli(*args: str, timeout: float = 600, **popen: object) -> subprocess.CompletedProcess:
    """`python -m pipeline.loadtest ARGS` from the checkout; output captured as text."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "pipeline.loadtest", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)
