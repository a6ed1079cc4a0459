"""Load page under AppTest, the server mocked at the client's boundary (ServingClient) and the run
started by a stand-in for `job.start_run` that writes a finished run folder: the request the page
builds from the picked model's signature, the remote-server confirmation, bad JSON, a server that
is down, a failed run's message and partial levels, two saved runs drawn together, and the
batching comparison's recommendation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import session
from pipeline.client.errors import ClientError
from pipeline.client.rest import ServingClient
from pipeline.loadtest import batching, job
from pipeline.loadtest.results import LevelResult
from pipeline.loadtest.spec import LoadSpec
from pipeline.loadtest.sweep import SweepResult
from pipeline.state import atomic_write_json

ROOT = Path(__file__).resolve().parents[2]
PAGE = str(ROOT / "dashboard" / "views" / "load.py")
TENSOR = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "2"}]}, "name": "in:0"}
METADATA = {"model_spec": {"name": "linear_model", "version": "3"}, "metadata": {"signature_def": {
    "signature_def": {"serving_default": {"inputs": {"inputs": TENSOR}, "outputs": {"output_0": TENSOR},
                                          "method_name": "tensorflow/serving/predict"}}}}}
MULTI = {"model_spec": {"name": "multi_io", "version": "1"}, "metadata": {"signature_def": {
    "signature_def": {"serving_default": {
        "inputs": {"city": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}]}},
                   "count": {"dtype": "DT_INT64", "tensor_shape": {"dim": [{"size": "-1"}]}}},
        "outputs": {"y": TENSOR}, "method_name": "tensorflow/serving/predict"},
        "by_city": {"inputs": {"city": {"dtype": "DT_STRING", "tensor_shape": {"dim": [{"size": "-1"}]}}},
                    "outputs": {"y": TENSOR}, "method_name": "tensorflow/serving/predict"}}}}}
STATUS = [{"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]


def level(concurrency: int, rps: float, p99: float, errors: dict[str, int] | None = None) -> LevelResult:
    errors = errors or {}
    count = int(rps)
    return LevelResult(concurrency, None, "REST", 1.0, count, count, count - sum(errors.values()),
                       sum(errors.values()), errors, dict.fromkeys(errors, "the server's words"), rps, rps,
                       p99 / 2, p99 / 3, p99 / 2, p99, p99 * 2, concurrency, concurrency, rps * 3,
                       server={"stages": [{"key": "request", "title": "whole request in the server",
                                           "metric": ":tensorflow:serving:request_latency", "unit": "ms",
                                           "count": float(count), "mean": p99 / 3, "p50": p99 / 4, "p99": p99,
                                           "per_model": True}],
                               "missing": ["request parse", "response write"], "other": []})


def saved_run(root: Path, spec: LoadSpec, result: SweepResult) -> Path:
    """A finished run folder, as `pipeline.loadtest.job` leaves one."""
    folder = root / f"20260101T00000{len(list(root.glob('*'))) if root.exists() else 0}-abcdef"
    folder.mkdir(parents=True)
    atomic_write_json(folder / job.SPEC, {"spec": spec.to_json(), "started": "2026-01-01 00:00:00"})
    atomic_write_json(folder / job.RESULT, result.to_json())
    return folder


class Fake:
    """The server the mocked client talks to, and the runs the page asked for."""

    def __init__(self) -> None:
        self.down: ClientError | None = None
        self.specs: list[LoadSpec] = []
        self.asked: list[str] = []
        self.outcome = SweepResult(status="done", levels=[level(1, 900, 2), level(2, 1700, 3)],
                                   where="POST http://127.0.0.1:8501/v1/models/linear_model:predict")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Fake:
    state = Fake()
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.delenv("MODEL_BASE_PATH", raising=False)

    def model_status(client: ServingClient, model: str, version: Any = None, label: Any = None) -> list:
        if state.down:
            raise state.down
        return STATUS

    def metadata(client: ServingClient, model: str, version: Any = None, label: Any = None) -> dict:
        if state.down:
            raise state.down
        state.asked.append(model)
        return MULTI if model == "multi_io" else METADATA

    def start_run(root: Path, spec: LoadSpec, keep: int = job.KEEP_RUNS) -> Path:
        state.specs.append(spec)
        return saved_run(Path(root), spec, state.outcome)

    monkeypatch.setattr(ServingClient, "model_status", model_status)
    monkeypatch.setattr(ServingClient, "metadata", metadata)
    monkeypatch.setattr(ServingClient, "is_streamlit", lambda client: False)
    monkeypatch.setattr(job, "start_run", start_run)
    return state


def frames(at: AppTest, column: str) -> list:
    """The tables shown that have ``column``, in page order (AppTest's dataframes carry no key)."""
    return [df.value for df in at.dataframe if column in df.value.columns]


def page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_run_sends_an_example_built_from_the_signature_and_shows_the_levels(fake: Fake) -> None:
    at = page()
    assert any('{"instances": [[0.0, 0.0]]}' in c.value for c in at.caption)
    at.text_input(key="load_levels").set_value("1,2").run()
    at.button(key="load_run_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    (spec,) = fake.specs
    assert spec.concurrency == (1, 2) and spec.body is None and spec.grpc is None
    assert (spec.url, spec.model) == (os.environ["SERVING_URL"], "linear_model")
    assert spec.signature == "serving_default"
    assert any(s.value.startswith("Done: 2 level(s) measured") for s in at.success)
    table = frames(at, "req/s")[0]  # this run's, above the saved runs
    assert list(table["level"]) == [1, 2] and list(table["req/s"]) == [900, 1700]
    assert any("Not exposed by this server: request parse, response write" in c.value for c in at.caption)


def test_grpc_and_a_version_are_passed_on(fake: Fake) -> None:
    at = page()
    at.radio(key="load_transport").set_value("gRPC").run()
    at.selectbox(key="load_version").set_value(3).run()
    at.button(key="load_run_button").click().run()
    (spec,) = fake.specs
    assert spec.grpc == os.environ["GRPC_TARGET"] and spec.version == 3


def test_the_picked_model_is_loaded_with_an_example_of_its_own_signature(fake: Fake) -> None:
    """?model=NAME (the sidebar's picker): the page offers that model's signatures, shows the
    example built from the picked one, and the run loads that model, never the default."""
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.query_params["model"] = "multi_io"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert set(fake.asked) == {"multi_io"}
    assert at.selectbox(key="load_signature").options == ["serving_default", "by_city"]
    assert any('{"instances": [{"city": "example", "count": 0}]}' in c.value for c in at.caption)
    at.selectbox(key="load_signature").set_value("by_city").run()
    assert any('{"signature_name": "by_city", "instances": ["example"]}' in c.value for c in at.caption)
    at.button(key="load_run_button").click().run()
    (spec,) = fake.specs
    assert (spec.model, spec.signature, spec.body) == ("multi_io", "by_city", None)


def test_a_server_on_another_machine_needs_a_confirmation(fake: Fake) -> None:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state[session.URL_KEY] = "http://10.9.8.7:8501"
    at.run()
    assert at.button(key="load_run_button").disabled
    assert "10.9.8.7" in at.checkbox(key="load_confirm_remote").label
    at.checkbox(key="load_confirm_remote").check().run()
    assert not at.button(key="load_run_button").disabled


def test_a_body_that_is_not_json_is_said_and_nothing_runs(fake: Fake) -> None:
    at = page()
    at.radio(key="load_source").set_value("json").run()
    at.text_area(key="load_json").input('{"instances": [[1, 2]').run()
    assert any("not JSON" in e.value for e in at.error)
    assert at.button(key="load_run_button").disabled
    at.text_area(key="load_json").input('{"instances": [[1, 2]]}').run()
    at.button(key="load_run_button").click().run()
    assert fake.specs[0].body == {"instances": [[1, 2]]}


def test_a_down_server_is_said_and_the_saved_runs_stay_readable(fake: Fake, tmp_path: Path) -> None:
    root = job.runs_root(tmp_path / "run")
    spec = LoadSpec(url="http://127.0.0.1:8501", model="linear_model", concurrency=(1, 2))
    older = saved_run(root, spec, fake.outcome)
    saved_run(root, spec.with_(concurrency=(4,)), SweepResult(levels=[level(4, 2500, 6)]))
    fake.down = ClientError("No model server answers at http://127.0.0.1:8501 (connection refused)",
                            url="http://127.0.0.1:8501")
    at = page()
    assert any("No model server answers" in e.value for e in at.error)
    assert at.button(key="load_run_button").disabled
    assert len(at.selectbox(key="load_pair_b").options) == 3  # none, and both runs
    at.selectbox(key="load_pair_b").set_value(str(older)).run()
    assert not at.exception
    assert [len(table) for table in frames(at, "req/s")] == [1, 2]  # run B (older, 2 levels) beside run A


def test_a_failed_run_says_why_and_keeps_its_levels(fake: Fake) -> None:
    fake.outcome = SweepResult(
        status="failed", levels=[level(1, 900, 2), level(2, 0, 0, {"connection refused": 40})],
        message="the server stopped answering at concurrency 2 (connection refused: ...)")
    at = page()
    at.button(key="load_run_button").click().run()
    assert any("the server stopped answering at concurrency 2" in e.value for e in at.error)
    table = frames(at, "req/s")[0]
    assert list(table["errors"]) == [0, 40] and "connection refused: 40" in list(table["by kind"])


def test_the_comparison_needs_the_embedded_server_and_shows_its_recommendation(fake: Fake,
                                                                               tmp_path: Path) -> None:
    at = page()
    assert any("needs the embedded server running" in i.value for i in at.info)
    folder = tmp_path / "cmp"
    folder.mkdir()
    on = batching.BatchingSetting(True, 32, 1000, 1)
    comparison = batching.Comparison(
        "done", p99_target_ms=50.0,
        results=[batching.SettingResult(batching.BatchingSetting(False), "done", levels=[level(8, 1500, 9)]),
                 batching.SettingResult(on, "done", levels=[level(8, 3800, 6)])],
        recommendation=batching.recommend([batching.SettingResult(on, levels=[level(8, 3800, 6)])], 50.0),
        restored="the embedded server was restarted with the command line it had before the comparison")
    atomic_write_json(folder / batching.COMPARISON, comparison.to_json())
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.session_state["load_batching"] = str(folder)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(s.value.startswith("Recommended: max_batch_size 32") for s in at.success)
    assert any(c.value.strip() == on.parameters_text().strip() for c in at.code)
    assert list(frames(at, "best OK/s")[0]["best OK/s"]) == [1500, 3800]
