"""Home page under AppTest (through app.py, so the navigation exists): the story's live state and
the one-click tutorial, with the client mocked at its boundary and the training process replaced
by a stand-in that finishes as version 1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.client.errors import ClientError
from pipeline.client.rest import PredictResult, ServingClient
from pipeline.runs import process
from pipeline.store.run_record import RunRecord

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
BASE = "http://127.0.0.1:8501"


class FakeServer:
    def __init__(self) -> None:
        self.available: list[int] = []
        self.down = False
        self.calls: list[dict[str, Any]] = []

    def ping(self, client: ServingClient) -> float:
        if self.down:
            raise ClientError(f"No model server answers at {BASE} (connection refused)", url=BASE)
        return 0.003

    def model_status(self, client: ServingClient, model: str, version=None, label=None) -> list[dict]:
        return [{"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in self.available]

    def predict(self, client: ServingClient, model: str, *, instances=None, version=None,
                **kw) -> PredictResult:
        self.calls.append({"instances": instances, "version": version})
        values = [[2.0 * a - b + 3.0] for a, b in instances]
        return PredictResult(url=f"{BASE}/v1/models/{model}/versions/{version}:predict",
                             request={"instances": instances}, response={"predictions": values},
                             status_code=200, latency_s=0.0042)

    def is_streamlit(self, client: ServingClient) -> bool:
        return False


class FakeRun:
    """Stands in for TrainingProcess: running until the test says it finished."""

    finished: dict[str, Any] | None = None
    started: list[FakeRun] = []

    def __init__(self, cfg, base_path, export=True, run_id=None) -> None:
        self.cfg, self.run_id = cfg, "run-1"

    def start(self) -> FakeRun:
        FakeRun.started.append(self)
        return self

    def record(self) -> RunRecord:
        return RunRecord.from_json({"id": self.run_id, **(FakeRun.finished or {
            "status": "running", "progress": {"epoch": 7}, "config": {"epochs": 100}})})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeServer:
    server = FakeServer()
    for name in ("ping", "model_status", "predict", "is_streamlit"):
        method = getattr(server, name)
        monkeypatch.setattr(ServingClient, name, lambda client, *a, _m=method, **k: _m(client, *a, **k))
    monkeypatch.setattr(process, "TrainingProcess", FakeRun)
    FakeRun.finished, FakeRun.started = None, []
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("MODEL_BASE_PATH", str(tmp_path / "models" / "linear_model"))
    return server


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_home_is_first_and_tells_the_story(fake: FakeServer, tmp_path: Path) -> None:
    (tmp_path / "models" / "linear_model" / "4").mkdir(parents=True)
    fake.available = [4]
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception, at.exception
    assert texts(at.title) == ["Train → serve → predict"]
    assert [m.value for m in at.metric] == ["4"]  # newest version on disk
    assert any("badge[up]" in m for m in texts(at.markdown))
    assert any("AVAILABLE: version 4" in c for c in texts(at.caption))
    assert any("No request sent yet" in c for c in texts(at.caption))


def test_run_the_tutorial_trains_waits_and_predicts(fake: FakeServer) -> None:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.button(key="home_run_tutorial").click().run()
    assert len(FakeRun.started) == 1 and FakeRun.started[0].cfg.samples == 800  # the defaults
    assert any("epoch 7 of 100" in i for i in texts(at.info))
    assert at.button(key="home_run_tutorial").disabled  # one tutorial at a time
    FakeRun.finished = {"status": "succeeded", "version": 1}
    at.run()
    assert any("waiting for the server to make it AVAILABLE" in i for i in texts(at.info))
    assert fake.calls == []  # nothing is sent before the version is AVAILABLE
    fake.available = [1]
    at.run()
    assert fake.calls == [{"instances": [[1.0, 2.0], [5.0, 7.0]], "version": 1}]
    table = at.dataframe[0].value
    assert table["predicted"].tolist() == [3.0, 6.0] and table["true (x·w0 + b0)"].tolist() == [3.0, 6.0]
    assert any("Version 1 answered in 4.2 ms" in s for s in texts(at.success))
    at.run()
    assert any("version 1" in c and "Last request" in c for c in texts(at.caption))  # kept in the history


def test_a_run_held_by_the_quality_gate_is_said(fake: FakeServer) -> None:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.button(key="home_run_tutorial").click().run()
    FakeRun.finished = {"status": "succeeded", "export_held": "not exported automatically: loss far above"}
    at.run()
    assert any("did not produce a version" in e and "loss far above" in e for e in texts(at.error))
    assert fake.calls == []


def test_a_reload_during_the_tutorial_finds_it_and_sends_its_request(fake: FakeServer) -> None:
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.button(key="home_run_tutorial").click().run()
    reloaded = AppTest.from_file(APP, default_timeout=30).run()  # a new browser session: nothing in it
    assert any("epoch 7 of 100" in i for i in texts(reloaded.info))
    assert reloaded.button(key="home_run_tutorial").disabled
    FakeRun.finished = {"status": "succeeded", "version": 1}
    fake.available = [1]
    reloaded.run()
    at.run()  # the first tab polls too: the request is sent once, not once per tab
    assert fake.calls == [{"instances": [[1.0, 2.0], [5.0, 7.0]], "version": 1}]
    assert any("Version 1 answered in 4.2 ms" in s for s in texts(reloaded.success))
    assert any("Version 1 answered in 4.2 ms" in s for s in texts(at.success))
    assert len(FakeRun.started) == 1


def test_a_tutorial_whose_training_process_is_gone_says_so(fake: FakeServer, tmp_path: Path) -> None:
    """A dashboard restarted mid-run: the record says running, but no process trains it any more."""
    from dashboard import tutorial_run
    from pipeline.store import records

    base = tmp_path / "models" / "linear_model"
    running = RunRecord.from_json({"id": "run-9", "status": "running", "config": {"epochs": 100}})
    records.save_run(base, running)
    tutorial_run.save(base, tutorial_run.Tutorial("run-9"))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert any("stopped without finishing" in e and "run-9" in e for e in texts(at.error))
    assert not at.button(key="home_run_tutorial").disabled


def test_another_run_training_disables_the_tutorial_and_is_shown(fake: FakeServer, tmp_path: Path) -> None:
    import subprocess
    import sys

    from pipeline.runs import lock
    from pipeline.state import ProcessRecord

    base = tmp_path / "models" / "linear_model"
    base.mkdir(parents=True)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        lock.record(base, "big-run", ProcessRecord.of(child.pid))
        at = AppTest.from_file(APP, default_timeout=30).run()
        assert at.button(key="home_run_tutorial").disabled
        assert any("Run big-run is training" in i and "Train page" in i for i in texts(at.info))
        assert any("Run big-run is training" in c for c in texts(at.caption))  # in the story's Train step
        assert not any(str(child.pid) in i for i in texts(at.info))
    finally:
        child.kill()
        child.wait()


def test_a_starting_or_stopped_embedded_server_is_not_called_down(fake: FakeServer, monkeypatch) -> None:
    from dashboard import server_state
    from pipeline.client import local_server

    fake.down = True
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert any("badge[down]" in m for m in texts(at.markdown))
    starting = local_server.ServerStatus(running=True, log_path=Path("log"), pid=1, port=8501)
    monkeypatch.setattr(server_state, "embedded_server_starting", lambda url: starting)
    at.run()
    assert any("badge[starting]" in m for m in texts(at.markdown))
    assert not any("connection refused" in c for c in texts(at.caption))
    monkeypatch.setattr(server_state, "embedded_server_starting", lambda url: None)
    at.session_state[server_state.STOPPED_KEY] = True
    at.run()
    assert any("badge[stopped]" in m for m in texts(at.markdown))


def test_a_model_folder_that_cannot_be_written_is_an_error_not_a_crash(fake: FakeServer, tmp_path: Path,
                                                                      monkeypatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the model folder should be")
    monkeypatch.setenv("MODEL_BASE_PATH", str(blocker))
    at = AppTest.from_file(APP, default_timeout=30).run()
    at.button(key="home_run_tutorial").click().run()
    assert not at.exception
    assert any("Cannot start the tutorial's run" in e for e in texts(at.error))
