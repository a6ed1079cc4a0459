"""The embedded server as the dashboard starts it: every model folder served, labels set on the
Models page (pipeline.store.serving_config) taking effect while it runs, a model added by a session
working on another name served without a restart. A real server process on a free loopback port."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from pipeline.client import local_server
from pipeline.runs.export import model_from_record
from pipeline.store import serving_config
from pipeline.store import versions as store
from pipeline.store.run_record import RunRecord, RunStatus, Weights
from tests.support.net import free_port, wait_for


def _export(base: Path, bias: float) -> int:
    record = RunRecord("r", RunStatus.SUCCEEDED, learned=Weights((2.0, -1.0), bias))
    return store.export_version(model_from_record(record), base, record).version


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")
    except OSError:
        return 0, {}


def _predict(url: str) -> tuple[int, dict]:
    body = json.dumps({"instances": [[1.0, 2.0]]}).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("GRPC_PORT", str(free_port()))  # the embedded server's gRPC side, never 8500 here
    models = tmp_path / "models"
    base = models / "linear_model"
    for bias in (3.0, 10.0):
        _export(base, bias)
    run_dir, port = tmp_path / "run", free_port()
    local_server.start(port, model_name="linear_model", base_path=base, run_dir=run_dir)
    root = f"http://127.0.0.1:{port}/v1/models"
    try:
        wait_for(lambda: _get(f"{root}/linear_model")[1].get("model_version_status", [{}])[0].get("state")
                 == "AVAILABLE" and len(_get(f"{root}/linear_model")[1]["model_version_status"]) == 2, 120)
        yield root, models, run_dir / local_server.MODELS_CONFIG_NAME
    finally:
        local_server.stop(run_dir=run_dir)


def test_a_label_set_in_the_config_is_served_without_a_restart(server):
    root, _, config = server
    assert _predict(f"{root}/linear_model/labels/stable:predict")[0] == 400  # no such label yet
    serving_config.set_label(config, "linear_model", "stable", 1)
    wait_for(lambda: _predict(f"{root}/linear_model/labels/stable:predict")[0] == 200, 30)
    stable = _predict(f"{root}/linear_model/labels/stable:predict")[1]
    assert stable["predictions"][0][0] == pytest.approx(3.0)
    serving_config.set_label(config, "linear_model", "stable", 2)
    wait_for(lambda: _predict(f"{root}/linear_model/labels/stable:predict")[1]
             .get("predictions", [[0]])[0][0] == pytest.approx(10.0), 30)


def test_a_model_another_session_trains_is_served_without_a_restart(server):
    root, models, config = server
    assert _get(f"{root}/other")[0] == 404
    assert serving_config.ensure_model(config, "other", models / "other")
    _export(models / "other", 1.0)
    wait_for(lambda: _predict(f"{root}/other:predict")[0] == 200, 60)
    assert _predict(f"{root}/other:predict")[1]["predictions"][0][0] == pytest.approx(1.0)
    assert _predict(f"{root}/linear_model:predict")[0] == 200  # the first model is still served
