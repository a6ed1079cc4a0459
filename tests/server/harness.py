"""Helpers for the server tests: start `python -m pipeline.serving` and talk to it over HTTP.

A `Server` is a real process on a free loopback port; `start_server` returns once the port
answers, after checking from the server's own log that batching is in the mode the test asked for
(`BATCHING_MODES` parametrizes fixtures over both). Fixtures that use these live in conftest.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.net import free_port, wait_for

__all__ = ["free_port", "wait_for"]  # re-exported for the server and reliability tests

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # importing TensorFlow and loading models on a busy 2-core machine



@dataclass
class Server:
    """A running `python -m pipeline.serving` process."""

    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def post(self, path: str, body: object = None, **kwargs) -> requests.Response:
        """POST `body` as JSON if it is a dict or list; str, bytes or an iterator of bytes verbatim."""
        if isinstance(body, (dict, list)):
            kwargs["json"] = body
        elif body is not None:
            kwargs["data"] = body
        return requests.post(self.url + path, timeout=30, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)


BATCHING_MODES = ("batching_on", "batching_off")
"""Ids of the two batching modes real-server fixtures are parametrized over."""
BATCHING_ON_LOG = "Batching enabled"
BATCHING_OFF_LOG = "Batching disabled"


def batching_args(mode: str) -> list[str]:
    """The flags for a batching mode, explicit both ways: `--enable_batching` (off is the default,
    as in TF Serving) or `--enable_batching=false`."""
    assert mode in BATCHING_MODES, mode
    return ["--enable_batching"] if mode == "batching_on" else ["--enable_batching=false"]


def start_server(args: list[str], log_path: Path, port: int | None = None, batching: str | None = None,
                 launcher: list[str] | None = None) -> Server:
    """Start the server with `args` (plus --rest_api_port) and wait until its port answers.
    With `batching` ("batching_on"/"batching_off") the matching flag is added, and the server's
    start-up log must say that mode is active. `launcher` replaces `-m pipeline.serving` (a script
    that prepares the process, then runs the server's `main` with the flags)."""
    if batching is not None:
        args = [*args, *batching_args(batching)]
    port = port or free_port()
    if not any(arg.startswith("--port") for arg in args):  # gRPC on a free port too, never 8500
        args = [*args, f"--port={free_port()}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, *(launcher or ["-m", "pipeline.serving"]), f"--rest_api_port={port}", *args],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, port, log_path)

    def answers() -> bool:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{server.log()[-3000:]}")
        try:
            requests.get(server.url + "/", timeout=1)
            return True
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or busy starting
            return False

    try:
        wait_for(answers, START_TIMEOUT, interval=0.1)
        if batching is not None:
            assert batching_mode(server) == batching, server.log()[-2000:]
    except BaseException:
        server.stop()
        raise
    return server


def batching_mode(server: Server) -> str:
    """"batching_on" or "batching_off", as the running server logged it at start-up."""
    log = server.log()
    on, off = BATCHING_ON_LOG in log, BATCHING_OFF_LOG in log
    assert on != off, "the server logged no (or both) batching modes"
    return "batching_on" if on else "batching_off"


def metric_value(server: Server, name: str, path: str = "/monitoring/prometheus/metrics",
                 **labels: str) -> float:
    """The value of one Prometheus sample (0.0 if absent) from the server's metrics endpoint."""
    response = server.get(path)
    assert response.status_code == 200, response.text
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{([^}}]*)\}})? (\S+)$", re.MULTILINE)
    total = 0.0
    for found_labels, value in pattern.findall(response.text):
        if all(part in found_labels.split(",") for part in wanted.split(",") if part):
            total += float(value)
    return total


@dataclass(frozen=True)
class Models:
    """Template SavedModel version dirs, to be copied into base paths."""

    half_plus_two: Path        # y = 0.5 x + 2
    half_plus_three: Path      # y = 0.5 x + 3 (to tell versions apart)
    identity: Path
    linear_keras: Path


def install_version(template: Path, base_path: Path, version: str) -> Path:
    """Copy a SavedModel into base_path/version the safe way: temp sibling, then rename."""
    base_path.mkdir(parents=True, exist_ok=True)
    staging = base_path / f".tmp-{version}-{time.monotonic_ns()}"
    shutil.copytree(template, staging)
    target = base_path / version
    staging.rename(target)
    return target



# The main server's limits (see conftest.main_server), asserted by the HTTP behaviour tests.
MAIN_MAX_BODY = 1024 * 1024
MAIN_TIMEOUT_MS = 3000


def ok_json(response: requests.Response) -> object:
    """The parsed body of a 200 JSON answer (NaN/Infinity tokens allowed), else fail."""
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    return json.loads(response.text)


def error_of(response: requests.Response, status: int) -> str:
    """The message of a `{"error": ...}` answer with the given status, else fail."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.text)
    assert list(body) == ["error"]
    return body["error"]
