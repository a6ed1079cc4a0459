"""The Java route: `java clients/java/Predict.java URL MODEL ROWS` against a real model server.

The server (`python -m pipeline.serving`) runs on a free loopback port and serves a version that
also holds `model.tflite` and `tfjs/`, which shows the exports sit inside a version without
disturbing the server. The Java client's numbers must equal the REST answer's exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from pipeline.formats import export_all
from pipeline.tf_env import keras
from tests.support.net import free_port, stop_process, wait_for

REPO = Path(__file__).resolve().parents[2]
PREDICT_JAVA = REPO / "clients" / "java" / "Predict.java"
MODEL = "linear_model"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("java") is None,
                       reason="java is not installed (Debian: openjdk-17-jdk-headless; .ci/run installs it)"),
]


def export_linear(version: Path) -> None:
    k = keras()
    inputs = k.Input(shape=(2,), name="inputs")
    model = k.Model(inputs, k.layers.Dense(1)(inputs))
    model.layers[-1].set_weights([np.array([[1.987], [-1.013]], "float32"), np.array([2.93], "float32")])
    model.export(str(version), verbose=False)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory) -> Iterator[str]:
    base = tmp_path_factory.mktemp("models") / MODEL
    version = base / "1"
    export_linear(version)
    assert all(isinstance(p, Path) for p in export_all(version).values())
    port = free_port()
    log_path = base.parent / "server.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.serving", f"--rest_api_port={port}", f"--port={free_port()}",
             f"--model_name={MODEL}", f"--model_base_path={base}"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def version_available() -> bool:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            status = requests.get(f"{url}/v1/models/{MODEL}", timeout=2).json()
        except (requests.RequestException, ValueError):
            return False
        return any(s.get("state") == "AVAILABLE" for s in status.get("model_version_status", []))

    try:
        wait_for(version_available, 180, interval=0.2)
        yield url
    finally:
        stop_process(process)


def run_java(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["java", str(PREDICT_JAVA), *args], capture_output=True, text=True, timeout=180)


def rest_predictions(url: str, rows: list) -> list:
    response = requests.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": rows}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


@pytest.mark.parametrize("rows", [
    [[1, 2], [5, 7]],
    np.random.default_rng(5).uniform(-10, 10, size=(20, 2)).round(4).tolist(),
], ids=["tutorial", "random20"])
def test_java_client_prints_the_rest_predictions_one_per_line(server_url, rows):
    done = run_java(server_url, MODEL, json.dumps(rows))
    assert done.returncode == 0, done.stderr
    printed = [json.loads(line) for line in done.stdout.splitlines()]
    assert printed == rest_predictions(server_url, rows)
    assert len(printed) == len(rows)


def test_tutorial_rows_give_about_three_and_six(server_url):
    done = run_java(server_url, f"{MODEL}/versions/1", "[[1,2],[5,7]]")
    assert done.returncode == 0, done.stderr
    first, second = (json.loads(line)[0] for line in done.stdout.splitlines())
    assert first == pytest.approx(2.891, abs=1e-4) and second == pytest.approx(5.774, abs=1e-4)


def test_http_errors_print_the_server_message_and_exit_1(server_url):
    done = run_java(server_url, "no_such_model", "[[1,2]]")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "HTTP 404" in done.stderr and "no_such_model" in done.stderr


def test_rows_that_are_not_json_exit_2_before_any_request():
    done = run_java("http://127.0.0.1:9", MODEL, "[[1,2],[5,7]")
    assert done.returncode == 2
    assert "ROWS is not valid JSON" in done.stderr


def test_an_unreachable_server_is_named():
    port = free_port()  # nothing listens there
    done = run_java(f"http://127.0.0.1:{port}", MODEL, "[[1,2]]")
    assert done.returncode == 1
    assert f"cannot connect to http://127.0.0.1:{port}" in done.stderr
