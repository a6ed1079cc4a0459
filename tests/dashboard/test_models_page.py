"""The Models page: versions on disk joined with the server's states, signature, compare,
delete, run history, and the empty-folder demo button. The server is mocked at the client's
boundary (``ServingClient.model_status``); versions are real SavedModels in a temp folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.client.errors import ClientError
from pipeline.client.rest import ServingClient
from pipeline.demo import seed_demo
from pipeline.store import versions as registry

NO_VERSIONS = ClientError("Could not find any versions of model linear_model", url="u", status_code=404)
PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "views" / "models.py")
SERVED = [
    {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}},
]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """Two demo versions plus a cancelled and a failed run, made once for the module."""
    base = tmp_path_factory.mktemp("seeded") / "linear_model"
    seed_demo(base, versions=2)
    return base


@pytest.fixture
def base(tmp_path, monkeypatch, seeded) -> Path:
    """A private copy of the seeded folder (tests delete versions), used as the model folder."""
    path = tmp_path / "linear_model"
    shutil.copytree(seeded, path)
    monkeypatch.setenv("MODEL_BASE_PATH", str(path))
    return path


@pytest.fixture
def server(monkeypatch):
    """Make the mocked server answer ``server.answer`` (a status list or a ClientError)."""
    class Server:
        answer: list | Exception = SERVED

    def model_status(self, model, version=None, label=None):
        assert model == "linear_model"
        if isinstance(Server.answer, Exception):
            raise Server.answer
        return Server.answer

    monkeypatch.setattr(ServingClient, "model_status", model_status)
    return Server


def open_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def table(at: AppTest, column: str):
    return next(df.value for df in at.dataframe if column in df.value.columns)


def test_versions_table_joins_disk_versions_with_serving_states(base, server):
    at = open_page()
    versions = table(at, "state")
    assert list(versions.index) == [2, 1]  # newest first
    assert versions.loc[2, "state"] == "AVAILABLE" and versions.loc[1, "state"] == "END"
    assert list(versions["samples"]) == [800, 100]
    assert versions.loc[2, "max |learned − true|"] < versions.loc[1, "max |learned − true|"]
    assert versions.loc[2, "learned w"].count(",") == 1
    assert not at.warning


def test_server_down_is_a_warning_and_disk_versions_stay_listed_as_unknown(base, server):
    server.answer = ClientError("No model server answers at http://127.0.0.1:8501 (connection refused)",
                                 url="http://127.0.0.1:8501/v1/models/linear_model", hint="Start it.")
    at = open_page()
    assert "Serving states are unknown" in at.warning[0].value and "connection refused" in at.warning[0].value
    assert list(table(at, "state")["state"]) == ["unknown", "unknown"]
    assert not at.error


def test_a_server_without_versions_marks_them_not_loaded(base, server):
    server.answer = NO_VERSIONS
    at = open_page()
    assert "has no version of `linear_model` loaded yet" in at.info[0].value
    assert list(table(at, "state")["state"]) == ["not loaded", "not loaded"]


def test_a_version_missing_from_the_servers_answer_is_not_loaded(base, server):
    server.answer = SERVED[:1]
    at = open_page()
    assert table(at, "state").loc[1, "state"] == "not loaded"


def test_signature_is_shown_as_saved_model_cli_prints_it(base, server):
    at = open_page()
    assert not at.code
    at.selectbox(key="models_sig_version").set_value(1)
    at.toggle(key="models_sig_show").set_value(True).run()
    text = at.code[0].value
    assert text.startswith("signature_def['serving_default']:")
    assert "inputs['inputs'] tensor_info:" in text and "shape: (-1, 2)" in text
    assert "Method name is: tensorflow/serving/predict" in text


def test_two_versions_are_compared_side_by_side(base, server):
    at = open_page()
    compared = table(at, "version 2 − version 1")
    assert list(compared.index) == ["w[0]", "w[1]", "b"]
    assert list(compared["true"]) == [2.0, -1.0, 3.0]
    v1, v2 = (registry.list_versions(base)[i].run_record["learned"] for i in (0, 1))
    assert list(compared["version 1"]) == [*v1["w"], v1["b"]]
    assert list(compared["version 2"]) == [*v2["w"], v2["b"]]
    chart = next(c for c in at.get("plotly_chart") if '"Weights side by side"' in c.proto.spec)
    assert '"version 1"' in chart.proto.spec and '"true"' in chart.proto.spec


def test_delete_needs_confirmation_then_removes_the_version(base, server):
    at = open_page()
    at.selectbox(key="models_del_version").set_value(1).run()
    button = at.button(key="models_del_button")
    assert button.label == "Delete version 1" and button.disabled
    at.checkbox(key="models_del_confirm").check().run()
    assert not at.button(key="models_del_button").disabled
    at.button(key="models_del_button").click().run()
    assert at.success[0].value == "Deleted version 1."
    assert [v.version for v in registry.list_versions(base)] == [2]
    assert list(table(at, "state").index) == [2]


def test_deleting_the_served_version_warns_first(base, server):
    at = open_page()
    at.selectbox(key="models_del_version").set_value(2).run()
    assert "Version 2 is being served right now" in at.warning[0].value


def test_run_history_lists_every_run_including_cancelled_and_failed(base, server):
    at = open_page()
    history = table(at, "error")
    assert sorted(history["status"]) == ["cancelled", "failed", "succeeded", "succeeded"]
    failed = history[history["status"] == "failed"].iloc[0]
    assert "on purpose" in failed["error"]
    assert sorted(history["version"].dropna().astype(int)) == [1, 2]
    assert "2 succeeded" in "\n".join(c.value for c in at.caption)


def test_an_empty_folder_explains_itself_and_seeds_demo_data(tmp_path, monkeypatch, server):
    server.answer = NO_VERSIONS
    base = tmp_path / "linear_model"
    monkeypatch.setenv("MODEL_BASE_PATH", str(base))
    at = open_page()
    assert "There are no versions under" in at.info[0].value
    assert at.button(key="models_seed_demo").label == "Seed demo data"
    at.number_input(key="models_demo_count").set_value(1)
    at.button(key="models_seed_demo").click().run()
    assert not at.exception
    assert at.success[0].value.startswith("Seeded demo data:")
    assert "version 1: few rows" in at.success[0].value
    assert list(table(at, "state").index) == [1]
    assert [v.version for v in registry.list_versions(base)] == [1]
