"""The Models page: versions on disk joined with the server's states, signature, compare,
delete, run history, and the empty-folder demo button. The server is mocked at the client's
boundary (``ServingClient.model_status``); versions are real SavedModels in a temp folder."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.client.errors import ClientError
from pipeline.client.rest import ServingClient
from pipeline.demo import seed_demo
from pipeline.store import versions as registry
from pipeline.store.run_record import RunRecord, RunStatus, Weights

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
    assert versions.loc[2, "state"] == "AVAILABLE" and versions.loc[1, "state"] == "unloaded (END)"
    assert list(versions["samples"]) == [800, 100]
    assert versions.loc[2, "max |learned − true|"] < versions.loc[1, "max |learned − true|"]
    assert versions.loc[2, "learned w1, w2"].count(",") == 1
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
    assert list(compared.index) == ["w1", "w2", "b"]
    assert list(compared["true"]) == [2.0, -1.0, 3.0]
    v1, v2 = (registry.list_versions(base)[i].run_record.learned for i in (0, 1))
    assert list(compared["version 1"]) == v1.flat
    assert list(compared["version 2"]) == v2.flat
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


def test_after_a_delete_no_choice_names_the_deleted_version_and_history_says_deleted(base, server):
    registry.export_version(_model_of(base, 2), base, RunRecord("copy", RunStatus.SUCCEEDED,
                                                                learned=Weights((2.0, -1.0), 3.0),
                                                                true=Weights((2.0, -1.0), 3.0)))
    at = open_page()
    at.selectbox(key="models_sig_version").set_value(3)
    at.selectbox(key="models_cmp_a").set_value(2)
    at.selectbox(key="models_cmp_b").set_value(3).run()
    at.selectbox(key="models_del_version").set_value(3).run()
    at.checkbox(key="models_del_confirm").check().run()
    at.button(key="models_del_button").click().run()
    assert at.success[0].value == "Deleted version 3."
    assert at.selectbox(key="models_sig_version").value == 2
    assert (at.selectbox(key="models_cmp_a").value, at.selectbox(key="models_cmp_b").value) == (1, 2)
    assert list(table(at, "version 2 − version 1").index) == ["w1", "w2", "b"]
    assert sum("error" in df.value.columns for df in at.dataframe) == 1  # the history, drawn once
    assert at.selectbox(key="models_del_version").value is None
    # the next export is version 4: 3 is never reused
    assert registry.export_version(_model_of(base, 2), base).version == 4


def _model_of(base: Path, version: int):
    from pipeline.runs.export import model_from_record

    return model_from_record(registry.read_run_record(base / str(version)))


def test_an_unloaded_version_is_not_reported_as_being_unloaded_forever(base, server):
    server.answer = [*SERVED, {"version": "7", "state": "END", "status": {"error_code": "OK"}}]
    at = open_page()
    assert not any("being unloaded" in c.value for c in at.caption)
    server.answer = [*SERVED, {"version": "7", "state": "UNLOADING", "status": {"error_code": "OK"}}]
    at.run()
    assert any("still reports version(s) 7" in c.value for c in at.caption)


def test_a_hand_dropped_corrupt_version_shows_its_load_error_and_says_it_has_no_run(base, server):
    corrupt = base / "5"
    corrupt.mkdir()
    (corrupt / "saved_model.pb").write_bytes(b"not a SavedModel")
    message = "Failed to load version 5: Could not parse saved_model.pb"
    server.answer = [{"version": "5", "state": "END",
                      "status": {"error_code": "DATA_LOSS", "error_message": message}}, *SERVED]
    at = open_page()
    versions = table(at, "state")
    assert versions.loc[5, "state"] == "load failed (END)" and versions.loc[5, "load error"] == message
    assert versions.loc[5, "run"].startswith("no run record")
    assert f"Version 5 failed to load on the server: {message}" in at.error[0].value


def test_a_label_is_written_to_the_embedded_servers_config(base, server, tmp_path, monkeypatch):
    from pipeline.serving.model_config import parse_model_config_text
    from pipeline.store import serving_config

    run_dir = tmp_path / "run"
    monkeypatch.setenv("SERVING_RUN_DIR", str(run_dir))
    config = run_dir / "models.config"
    serving_config.write_for_server(config, "linear_model", base)  # as the embedded server's start does
    at = open_page()
    at.selectbox(key="models_label_name").set_value("stable")
    at.selectbox(key="models_label_version").set_value(2)
    at.button(key="models_label_set").click().run()
    assert not at.exception
    assert "Label `stable` → version 2" in at.success[0].value
    assert parse_model_config_text(config.read_text())[0].labels == {"stable": 2}
    assert table(at, "state").loc[2, "labels"] == "stable"
    at.button(key="models_label_remove").click().run()
    assert parse_model_config_text(config.read_text())[0].labels == {}


@pytest.fixture
def config(base, tmp_path, monkeypatch) -> Path:
    """The embedded server's models.config, written as its start does."""
    from pipeline.store import serving_config

    run_dir = tmp_path / "run"
    monkeypatch.setenv("SERVING_RUN_DIR", str(run_dir))
    serving_config.write_for_server(run_dir / "models.config", "linear_model", base)
    return run_dir / "models.config"


def _labels(config: Path) -> dict[str, int]:
    from pipeline.store import serving_config

    return serving_config.labels_of(config, "linear_model")


def test_a_label_is_offered_only_on_available_versions(base, server, config):
    """TF Serving refuses a label on a version that is not AVAILABLE (version 1 is END here)."""
    at = open_page()
    assert at.selectbox(key="models_label_version").options == ["version 2"]
    server.answer = [{**SERVED[0], "state": "LOADING"}, SERVED[1]]
    at.run()
    assert at.selectbox(key="models_label_version").options == []
    assert at.button(key="models_label_set").disabled
    assert any("No version is AVAILABLE" in c.value for c in at.caption)


def test_a_label_on_an_unloaded_version_is_flagged(base, server, config):
    from pipeline.store import serving_config

    serving_config.set_label(config, "linear_model", "canary", 1)  # written by hand, or by older code
    at = open_page()
    assert any("Label `canary`: version 1 is unloaded (END)" in w.value and "requests to `canary` fail"
               in w.value for w in at.warning), [w.value for w in at.warning]


@pytest.mark.parametrize("choice, expected", [(2, {"canary": 2}), ("remove", {})])
def test_deleting_a_labelled_version_moves_or_removes_its_label(base, server, config, choice, expected):
    from pipeline.store import serving_config

    serving_config.set_label(config, "linear_model", "canary", 1)
    serving_config.set_label(config, "linear_model", "stable", 2)
    at = open_page()
    at.selectbox(key="models_del_version").set_value(1).run()
    assert any("`canary` point at version 1" in w.value for w in at.warning), [w.value for w in at.warning]
    radio = at.radio(key="models_del_labels")
    assert radio.options == ["Move `canary` to version 2 (AVAILABLE)", "Remove `canary`"]
    radio.set_value(choice).run()
    at.checkbox(key="models_del_confirm").check().run()
    at.button(key="models_del_button").click().run()
    assert not at.exception and not at.error
    assert [v.version for v in registry.list_versions(base)] == [2]
    assert _labels(config) == {**expected, "stable": 2}
    said = "moved `canary` to version 2" if choice == 2 else "removed `canary`"
    assert at.success[0].value == f"Deleted version 1; {said}."


def test_deleting_an_unlabelled_version_asks_nothing_about_labels(base, server, config):
    at = open_page()
    at.selectbox(key="models_del_version").set_value(1).run()
    assert "models_del_labels" not in [r.key for r in at.radio]


def test_labels_without_an_embedded_server_config_say_where_they_live(base, server, tmp_path, monkeypatch):
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path / "nothing-here"))
    at = open_page()
    assert "models_label_set" not in [b.key for b in at.button]
    assert any("Labels live in the model server's models.config" in c.value for c in at.caption)


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
    assert re.fullmatch(r"\d{1,2} \w{3} \d{4}, \d\d:\d\d:\d\d \w+", history.iloc[0]["started"])  # no raw ISO


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


# -- other formats (issue 12) ------------------------------------------------------------------------

def test_the_versions_table_says_which_formats_each_version_has(base, server):
    at = open_page()
    assert set(table(at, "state")["formats"]) == {"SavedModel, TFLite, TF.js"}  # every new version
    shutil.rmtree(base / "1" / "tfjs")  # as if its conversion had failed:
    recorded = {"tflite": {"path": "model.tflite", "bytes": 1},
                "tfjs": {"error": "TF.js export refused: op 'Foo'."}}
    registry.update_run_record(base / "1", formats=recorded)
    at.run()
    versions = table(at, "state")
    assert versions.loc[1, "formats"] == "SavedModel, TFLite, TF.js failed"
    assert versions.loc[2, "formats"] == "SavedModel, TFLite, TF.js"
    note = next(c.value for c in at.caption if c.value.startswith("Version 1 has no TF.js model"))
    assert "op 'Foo'" in note and "--version 1" in note
    assert versions.loc[1, "state"] == "unloaded (END)"  # the version itself is listed as before


# -- a remote server whose folder is not on this machine (issue 13) ----------------------------------

REMOTE_STATUS = [
    {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    {"version": "1", "state": "END", "status": {"error_code": "DATA_LOSS", "error_message": "bad pb"}},
]


def _metadata(version: int, features: int = 2) -> dict:
    tensor = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": str(features)}]},
              "name": "serving_default_inputs:0"}
    out = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "1"}]},
           "name": "StatefulPartitionedCall:0"}
    sig = {"inputs": {"inputs": tensor}, "outputs": {"output_0": out},
           "method_name": "tensorflow/serving/predict"}
    return {"model_spec": {"name": "linear-model", "version": str(version), "signature_name": ""},
            "metadata": {"signature_def": {"signature_def": {"serving_default": sig}}}}


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """The dashboard of a cluster user: MODEL_NAME=linear-model, no such folder here, and a server
    (mocked at ServingClient) that reports three versions."""
    monkeypatch.setenv("MODEL_NAME", "linear-model")
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "not-here"))
    asked = []

    def model_status(self, model, version=None, label=None):
        asked.append(("status", model))
        return REMOTE_STATUS

    def metadata(self, model, version=None, label=None):
        asked.append(("metadata", model, version))
        return _metadata(3 if version is None else int(version), features=3 if version == 2 else 2)

    monkeypatch.setattr(ServingClient, "model_status", model_status)
    monkeypatch.setattr(ServingClient, "metadata", metadata)
    return asked


def test_without_the_folder_versions_are_read_from_the_server(cluster, tmp_path):
    at = open_page()
    assert "Versions are read from the model server" in at.info[0].value
    assert "is not on this machine" in at.info[0].value
    versions = table(at, "serving_default")
    assert list(versions.index) == [3, 2, 1]
    assert list(versions["state"]) == ["AVAILABLE", "AVAILABLE", "load failed (END)"]
    assert list(versions["answers requests without a version"]) == [True, False, False]
    assert versions.loc[3, "serving_default"] == "inputs DT_FLOAT (-1, 2) → output_0 DT_FLOAT (-1, 1)"
    assert versions.loc[2, "serving_default"].startswith("inputs DT_FLOAT (-1, 3)")
    assert versions.loc[1, "load error"] == "bad pb" and "Version 1 failed to load" in at.error[0].value
    assert ("metadata", "linear-model", 1) not in cluster  # an END version has no metadata to ask for
    assert not (tmp_path / "not-here").exists()  # nothing is written on this machine


def test_against_a_remote_server_folder_actions_are_hidden(cluster):
    at = open_page()
    keys = {w.key for w in [*at.button, *at.selectbox, *at.checkbox]}
    assert not keys & {"models_del_version", "models_del_button", "models_label_set", "models_label_name",
                       "models_seed_demo", "models_cmp_a"}
    assert not any("error" in df.value.columns and "status" in df.value.columns for df in at.dataframe)
    at.selectbox(key="models_remote_sig_version").set_value(2).run()
    signature = table(at, "kind")
    assert list(signature["shape"]) == ["(-1, 3)", "(-1, 1)"]
    assert set(signature["signature"]) == {"serving_default"}


def test_a_missing_folder_and_a_silent_server_fall_back_to_the_empty_folder(tmp_path, monkeypatch, server):
    server.answer = ClientError("No model server answers at http://127.0.0.1:8501 (connection refused)",
                                url="http://127.0.0.1:8501/v1/models/linear_model")
    monkeypatch.setenv("MODEL_BASE_PATH", str(tmp_path / "absent"))
    at = open_page()
    assert any("cannot list them" in c.value and "connection refused" in c.value for c in at.caption)
    assert "There are no versions under" in at.info[0].value


def test_a_real_server_whose_folder_is_elsewhere_lists_its_versions(tmp_path, monkeypatch):
    """Our server reads a folder the dashboard is not told about, like a pod reading its volume."""
    from pipeline.runs.export import model_from_record
    from tests.server.harness import start_server
    from tests.support.net import free_port

    remote = tmp_path / "volume" / "linear-model"
    for w in ([2.0, -1.0], [1.0, 1.0]):
        registry.export_version(model_from_record(RunRecord("r", learned=Weights(tuple(w), 3.0))), remote)
    flags = ["--model_name=linear-model", f"--model_base_path={remote}", f"--port={free_port()}"]
    server = start_server(flags, tmp_path / "server.log")
    try:
        monkeypatch.setenv("MODEL_NAME", "linear-model")
        monkeypatch.setenv("MODELS_DIR", str(tmp_path / "not-here"))
        monkeypatch.setenv("SERVING_URL", server.url)
        at = open_page()
        assert "Versions are read from the model server" in at.info[0].value
        versions = table(at, "serving_default")
        assert 2 in versions.index and versions.loc[2, "state"] == "AVAILABLE"
        assert versions.loc[2, "answers requests without a version"]
        assert versions.loc[2, "serving_default"].startswith("inputs DT_FLOAT (-1, 2)")
    finally:
        server.stop()
