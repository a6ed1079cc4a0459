"""Predict page under AppTest, with the client mocked at its boundary (ServingClient methods):
a fake server whose versions answer with known weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.client import local_server as server_process
from pipeline.client.errors import ClientError
from pipeline.client.rest import PredictResult, ServingClient
from pipeline.client.urls import model_url
from tests.support.kept_charts import kept_figures

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "views" / "predict.py")
BASE = "http://127.0.0.1:8501"
WEIGHTS = {3: ((2.0, -1.0), 3.0), 2: ((1.5, -1.0), 2.0)}
"""Version 3 learned the truth exactly; version 2 is off."""
INPUT = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "2"}]}}
OUTPUT = {"output_0": {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "1"}]}}}
METHOD = "tensorflow/serving/predict"
SIGNATURES = {"serving_default": {"inputs": {"inputs": INPUT}, "outputs": OUTPUT, "method_name": METHOD},
              "alt": {"inputs": {"inputs": INPUT}, "outputs": OUTPUT, "method_name": METHOD},
              "__saved_model_init_op": {"inputs": {}, "outputs": {}, "method_name": ""}}


class FakeServer:
    """Answers like TF Serving for a linear model per version; records every predict call."""

    def __init__(self) -> None:
        self.down: ClientError | None = None
        self.no_versions = False
        self.calls: list[dict[str, Any]] = []
        self.weights = dict(WEIGHTS)

    def _check(self, url: str) -> None:
        if self.down:
            raise self.down
        if self.no_versions:
            raise ClientError("Could not find any versions of model linear_model", url=url, status_code=404,
                               hint="Train and export one on the Train page.")

    def model_status(self, client: ServingClient, model: str, version=None, label=None) -> list[dict]:
        self._check(model_url(BASE, model))
        return [{"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in sorted(self.weights, reverse=True)]

    def metadata(self, client: ServingClient, model: str, version=None, label=None) -> dict:
        self._check(model_url(BASE, model, version, label, metadata=True))
        if label == "nope":
            raise ClientError("Unrecognized servable version label: nope", url=BASE, status_code=400,
                               hint="No such label.")
        served = version or (max(self.weights) if label in (None, "stable") else 2)
        return {"model_spec": {"name": model, "version": str(served)},
                "metadata": {"signature_def": {"signature_def": SIGNATURES}}}

    def predict(self, client: ServingClient, model: str, *, instances=None, inputs=None, version=None,
                label=None, signature_name=None) -> PredictResult:
        url = model_url(BASE, model, version, label, verb="predict")
        self._check(url)
        self.calls.append({"instances": instances, "inputs": inputs, "version": version, "label": label,
                           "signature_name": signature_name})
        (w1, w2), b = self.weights[version or max(self.weights)]
        rows = instances if instances is not None else inputs
        values = [[w1 * x1 + w2 * x2 + b] for x1, x2 in rows]
        request = {"signature_name": signature_name} if signature_name else {}
        request.update({"instances": rows} if instances is not None else {"inputs": rows})
        response = {"predictions": values} if instances is not None else {"outputs": values}
        return PredictResult(url=url, request=request, response=response, status_code=200, latency_s=0.0123)

    def predict_body(self, client: ServingClient, model: str, body: dict, *, version=None,
                     label=None) -> PredictResult:
        return self.predict(client, model, instances=body.get("instances"), inputs=body.get("inputs"),
                            version=version, label=label, signature_name=body.get("signature_name"))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeServer:
    server = FakeServer()
    monkeypatch.setenv("SERVING_URL", BASE)  # the server this fake stands in for, and its gRPC side
    monkeypatch.setenv("GRPC_TARGET", "127.0.0.1:8500")
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path))  # no embedded server recorded
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))  # the request history lives here
    monkeypatch.setenv("MODEL_BASE_PATH", str(tmp_path / "models" / "linear_model"))
    for name in ("model_status", "metadata", "predict", "predict_body"):
        method = getattr(server, name)
        monkeypatch.setattr(ServingClient, name, lambda client, *a, _m=method, **k: _m(client, *a, **k))
    return server


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def result_table(at: AppTest, column: str = "predicted"):
    """The page's table holding ``column`` (the result or the comparison, not the history)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_tutorial_rows_predicted_next_to_truth(fake: FakeServer) -> None:
    at = run_page()
    assert at.data_editor[0].value.values.tolist() == [[1.0, 2.0], [5.0, 7.0]]
    at.button(key="predict_send").click().run()
    assert not at.exception and not at.error
    table = result_table(at)
    assert table["predicted"].tolist() == [3.0, 6.0]
    assert table["true (x·w0 + b0)"].tolist() == [3.0, 6.0]
    assert table["residual"].tolist() == [0.0, 0.0]
    assert fake.calls == [{"instances": [[1.0, 2.0], [5.0, 7.0]], "inputs": None, "version": None,
                           "label": None, "signature_name": None}]
    codes = texts(at.code)
    assert json.loads(codes[0]) == {"instances": [[1.0, 2.0], [5.0, 7.0]]}
    assert json.loads(codes[1]) == {"predictions": [[3.0], [6.0]]}
    assert codes[2].startswith(f"curl -sS -X POST {BASE}/v1/models/linear_model:predict")
    assert "requests.post(url" in codes[3]
    assert [m.value for m in at.metric][:1] == ["12.3 ms"]
    assert any("the latest version (version 3)" in c for c in texts(at.caption))
    kept = kept_figures(at)  # both charts stay mounted across answers (dashboard/kept_chart.py)
    assert set(kept) == {"predict_chart_scatter", "predict_chart_plane"}
    assert kept["predict_chart_scatter"]["data"][1]["y"] == [3.0, 6.0]  # after the y = x line
    plane = kept["predict_chart_plane"]
    assert [t["type"] for t in plane["data"]] == ["surface", "scatter3d", "scatter3d"]
    assert plane["data"][2]["z"] == [3.0, 6.0]


def test_chosen_version_and_columnar_format(fake: FakeServer) -> None:
    at = run_page()
    at.selectbox(key="predict_target").set_value(2)
    at.radio(key="predict_format").set_value("columnar")
    at.selectbox(key="predict_signature").set_value("alt")
    at.button(key="predict_send").click().run()
    assert fake.calls[-1] == {"instances": None, "inputs": [[1.0, 2.0], [5.0, 7.0]], "version": 2,
                              "label": None, "signature_name": "alt"}
    table = result_table(at)
    assert table["predicted"].tolist() == [1.5 - 2.0 + 2.0, 7.5 - 7.0 + 2.0]
    assert table["residual"].tolist() == pytest.approx([1.5 - 3.0, 2.5 - 6.0])
    assert json.loads(texts(at.code)[1]) == {"outputs": [[1.5], [2.5]]}


def test_label_target(fake: FakeServer) -> None:
    at = run_page()
    at.selectbox(key="predict_target").set_value("label").run()
    assert at.button(key="predict_send").disabled  # no label typed yet
    at.text_input(key="predict_label").set_value("nope").run()
    assert any("Unrecognized servable version label" in e for e in texts(at.error))
    at.text_input(key="predict_label").set_value("stable").run()
    at.button(key="predict_send").click().run()
    assert fake.calls[-1]["label"] == "stable" and fake.calls[-1]["version"] is None


def test_server_down_shows_what_to_do(fake: FakeServer) -> None:
    fake.down = ClientError("No model server answers at http://127.0.0.1:8501 (connection refused)",
                             url=BASE, hint="Start it on the Serving page.")
    at = run_page()
    (error,) = texts(at.error)  # said once, not once per question asked of the server
    assert "No model server answers" in error and "Serving page" in error
    at.button(key="predict_send").click().run()
    assert not at.exception
    assert sum("No model server answers" in e for e in texts(at.error)) >= 2
    assert not at.tabs  # no result shown


def test_empty_model_folder(fake: FakeServer) -> None:
    fake.no_versions = True
    at = run_page()
    assert any("Could not find any versions" in e and "Train page" in e for e in texts(at.error))
    assert any("needs two AVAILABLE versions" in i for i in texts(at.info))


def test_non_numeric_csv_cell_is_named_and_nothing_is_sent(fake: FakeServer) -> None:
    at = run_page()
    at.file_uploader(key="predict_csv").upload("rows.csv", b"x1,x2\n1,2\n3,abc\n", "text/csv").run()
    errors = texts(at.error)
    assert any("Line 3, column x2: 'abc' is not a number (1 cell cannot be sent)" in e
               for e in errors), errors
    assert at.button(key="predict_send").disabled
    assert at.data_editor[0].value.values.tolist() == [[1.0, 2.0], [5.0, 7.0]]  # table unchanged
    assert fake.calls == []


def test_csv_rows_replace_the_table(fake: FakeServer) -> None:
    at = run_page()
    at.file_uploader(key="predict_csv").upload("rows.csv", b"0,0\n-1,4.5\n10,10\n", "text/csv").run()
    assert at.data_editor[0].value.values.tolist() == [[0.0, 0.0], [-1.0, 4.5], [10.0, 10.0]]
    at.button(key="predict_send").click().run()
    assert result_table(at)["predicted"].tolist() == [3.0, -3.5, 13.0]


def test_random_rows_are_added_in_range(fake: FakeServer) -> None:
    at = run_page()
    at.number_input(key="predict_random_count").set_value(7)
    at.button(key="predict_add_random").click().run()
    rows = at.data_editor[0].value
    assert len(rows) == 9 and rows.iloc[:2].values.tolist() == [[1.0, 2.0], [5.0, 7.0]]
    assert rows.abs().max().max() <= 10.0
    at.button(key="predict_reset").click().run()
    assert len(at.data_editor[0].value) == 2


def test_empty_cell_is_reported(fake: FakeServer) -> None:
    at = AppTest.from_file(PAGE, default_timeout=30)
    edits = {"edited_rows": {1: {"x2": None}}, "added_rows": [], "deleted_rows": []}
    at.session_state["predict_editor"] = edits
    at.run()
    assert any("Row 2, column x2: empty" in e for e in texts(at.error))
    assert at.button(key="predict_send").disabled


def test_compare_two_versions(fake: FakeServer) -> None:
    at = run_page()
    assert at.selectbox(key="compare_a").value == 2 and at.selectbox(key="compare_b").value == 3
    at.button(key="predict_compare_send").click().run()
    assert not at.exception
    table = result_table(at, "version 2")
    assert table["version 2"].tolist() == [1.5, 2.5] and table["version 3"].tolist() == [3.0, 6.0]
    assert table["version 3 − version 2"].tolist() == [1.5, 3.5]
    assert [c["version"] for c in fake.calls] == [2, 3]
    assert len(at.get("plotly_chart")) == 1


def test_embedded_server_still_starting_is_not_an_error(fake: FakeServer, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    fake.down = ClientError("No model server answers at http://127.0.0.1:8501 (connection refused)",
                             url=BASE, hint="Start it on the Serving page.")
    starting = server_process.ServerStatus(running=True, log_path=tmp_path / "serving.log", pid=42, port=8501)
    monkeypatch.setattr(server_process, "status", lambda run_dir=None: starting)
    at = run_page()
    assert not at.error
    assert any("embedded server (pid 42) is starting" in i for i in texts(at.info))


def test_ten_thousand_rows_are_sampled_collapsed_and_downloadable(fake: FakeServer) -> None:
    """Item 2: 10,000 rows plot 2,000 points (said so), the JSON is a preview plus downloads, and
    the curl/Python snippets read the body from a file instead of holding it."""
    import time

    import numpy as np
    import pandas as pd

    at = AppTest.from_file(PAGE, default_timeout=60)
    rows = np.round(np.random.default_rng(1).uniform(-10, 10, size=(10_000, 2)), 3)
    at.session_state["predict_rows"] = pd.DataFrame(rows, columns=["x1", "x2"])
    at.run()
    assert not at.exception and not at.error
    started = time.perf_counter()
    at.button(key="predict_send").click().run()
    seconds = time.perf_counter() - started
    print(f"\nSend with 10,000 rows to a settled page (AppTest, fake server): {seconds:.2f} s")
    assert not at.exception
    assert len(result_table(at)) == 10_000
    assert any("Charts show 2,000 of 10,000 points" in c for c in texts(at.caption))
    request_preview = texts(at.code)[0]
    assert request_preview.startswith("// first 20 of 10,000 rows")
    assert max(len(c) for c in texts(at.code)) < 5_000  # no whole body on the page
    assert "-d @request.json" in texts(at.code)[2]
    downloads = at.get("download_button")
    assert len(downloads) == 2
    assert any("Up to 50,000 rows" in c and "pipeline.batch" in c for c in texts(at.caption))


def test_csv_beyond_the_limit_points_to_batch_scoring(fake: FakeServer) -> None:
    at = run_page()
    big = b"x1,x2\n" + b"1,2\n" * 50_001
    at.file_uploader(key="predict_csv").upload("big.csv", big, "text/csv").run()
    assert any("50,001 rows" in e and "python -m pipeline.batch" in e for e in texts(at.error))
    assert at.button(key="predict_send").disabled
    assert fake.calls == []


def test_reset_clears_the_answer_of_the_dropped_rows(fake: FakeServer) -> None:
    at = run_page()
    at.number_input(key="predict_random_count").set_value(50)
    at.button(key="predict_add_random").click().run()
    at.button(key="predict_send").click().run()
    assert len(result_table(at)) == 52
    at.button(key="predict_reset").click().run()
    assert len(at.data_editor[0].value) == 2
    assert not any("predicted" in d.value.columns for d in at.dataframe)  # no 52-row answer under 2 rows
    assert not any("Answered by" in c for c in texts(at.caption))


def test_answer_is_marked_stale_when_rows_change(fake: FakeServer) -> None:
    at = run_page()
    at.button(key="predict_send").click().run()
    assert not at.warning
    edits = {"edited_rows": {0: {"x1": 4.0}}, "added_rows": [], "deleted_rows": []}
    at.session_state["predict_editor"] = edits
    at.run()
    assert any("stale" in w and "inputs or options changed" in w for w in texts(at.warning))


def test_answer_of_a_deleted_version_is_marked_stale(fake: FakeServer) -> None:
    at = run_page()
    at.selectbox(key="predict_target").set_value(2)
    at.button(key="predict_send").click().run()
    del fake.weights[2]
    at.run()
    assert any("version 2 is no longer AVAILABLE" in w for w in texts(at.warning))


def test_nan_answer_is_called_out(fake: FakeServer) -> None:
    fake.weights[4] = ((float("nan"), float("nan")), float("nan"))
    at = run_page()
    at.button(key="predict_send").click().run()
    assert not at.exception
    assert any("NaN or infinity for 2 of 2 rows" in e and "version 4" in e for e in texts(at.error))


def test_unknown_label_is_one_error_and_blocks_send(fake: FakeServer) -> None:
    at = run_page()
    at.selectbox(key="predict_target").set_value("label").run()
    at.text_input(key="predict_label").set_value("nope").run()
    assert sum("Unrecognized servable version label" in e for e in texts(at.error)) == 1
    assert at.button(key="predict_send").disabled


def test_half_filled_new_row_is_named_not_dropped(fake: FakeServer) -> None:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["predict_editor"] = {"edited_rows": {}, "added_rows": [{"x1": 4.0}], "deleted_rows": []}
    at.run()
    assert any("Row 3, column x2: empty" in e for e in texts(at.error))
    assert at.button(key="predict_send").disabled
    # A `required` column makes the browser drop a half-filled row without a word.
    assert '"required": true' not in at.data_editor[0].proto.columns.replace("'", '"').lower()


def test_compare_hint_when_the_server_already_keeps_two(fake: FakeServer, tmp_path: Path) -> None:
    del fake.weights[2]
    (tmp_path / "models" / "linear_model" / "3").mkdir(parents=True)
    at = run_page()
    (hint,) = [i for i in texts(at.info) if "Comparing needs" in i]
    assert "one version on disk" in hint and "train another" in hint
    assert "set 'Versions kept loaded' to 2" not in hint


def test_requests_are_kept_replayed_and_shared(fake: FakeServer, tmp_path: Path) -> None:
    at = run_page()
    at.selectbox(key="predict_target").set_value(2)
    at.button(key="predict_send").click().run()
    history_file = tmp_path / "models" / "linear_model" / ".history" / "requests.jsonl"
    (entry,) = [json.loads(line) for line in history_file.read_text().splitlines()]
    assert entry["version"] == 2 and entry["rows"] == 2 and entry["latency_ms"] == 12.3
    assert entry["response"] == {"predictions": [[1.5], [2.5]]}
    assert "version" not in at.query_params  # Send adds no browser-history entry; the link is shown below
    table = next(d.value for d in at.dataframe if "transport" in d.value.columns)
    assert table[["transport", "target", "version", "rows", "outcome"]].values.tolist() == [
        ["REST", "version 2", 2, 2, "OK"]]
    assert any("?version=2&rows=1,2;5,7&send=1" in c for c in texts(at.code))
    at.button(key="history_replay").click().run()
    assert any("Replayed over REST in" in s and "the same answer as before" in s for s in texts(at.success))
    assert len(history_file.read_text().splitlines()) == 2
    assert [c["version"] for c in fake.calls] == [2, 2]


def test_shared_link_sets_rows_and_version(fake: FakeServer) -> None:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.query_params["rows"] = "0,0;10,-10"
    at.query_params["version"] = "2"
    at.run()
    assert at.data_editor[0].value.values.tolist() == [[0.0, 0.0], [10.0, -10.0]]
    assert at.selectbox(key="predict_target").value == 2


def test_grpc_transport_answers_with_its_latency_and_stub_snippet(fake: FakeServer,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11's dashboard part: the same rows over gRPC (PredictionService/Predict), its latency
    beside REST's, and a runnable snippet with the official PredictionServiceStub."""
    from pipeline.client.grpc import GrpcClient, GrpcPredictResult

    grpc_calls: list[dict] = []

    def grpc_predict(client, model, inputs, version=None, label=None, signature="serving_default", **kw):
        (array,) = inputs.values()
        rows = array.tolist()
        grpc_calls.append({"target": client.target, "rows": rows, "version": version, "signature": signature,
                           "dtype": str(array.dtype), "key": next(iter(inputs))})
        (w1, w2), b = fake.weights[version or max(fake.weights)]
        return GrpcPredictResult(model=model, version=version or max(fake.weights), signature=signature,
                                 outputs={"output_0": [[w1 * x1 + w2 * x2 + b] for x1, x2 in rows]},
                                 latency_s=0.0021)

    monkeypatch.setattr(GrpcClient, "predict_arrays", grpc_predict)
    at = run_page()
    at.button(key="predict_send").click().run()  # REST first
    at.radio(key="predict_transport").set_value("gRPC").run()
    assert any("stale" in w for w in texts(at.warning))  # the REST answer is not the gRPC one
    at.button(key="predict_send").click().run()
    assert grpc_calls == [{"target": "127.0.0.1:8500", "rows": [[1.0, 2.0], [5.0, 7.0]], "version": None,
                           "signature": "serving_default", "dtype": "float32", "key": "inputs"}]
    assert result_table(at)["predicted"].tolist() == [3.0, 6.0]
    assert [m.value for m in at.metric][:1] == ["2.1 ms"]
    assert any("Last round trip by transport: REST 12.3 ms · gRPC 2.1 ms" in c for c in texts(at.caption))
    assert any("Answered by the latest version (version 3)" in c for c in texts(at.caption))
    snippet = texts(at.code)[4]
    assert "prediction_service_pb2_grpc.PredictionServiceStub(channel)" in snippet
    assert "grpc.insecure_channel('127.0.0.1:8500')" in snippet
    assert 'inputs = {"inputs": [[1.0, 2.0], [5.0, 7.0]]}' in snippet and '"inputs": "float32"' in snippet
    compile(snippet, "snippet.py", "exec")
    table = next(d.value for d in at.dataframe if "transport" in d.value.columns)
    assert table["transport"].tolist() == ["gRPC", "REST"]


def test_url_of_the_dashboard_itself_is_explained(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit import config

    url = f"http://127.0.0.1:{config.get_option('server.port')}"
    fake.down = ClientError("The server answered with text/html instead of JSON", url=url, status_code=200)
    monkeypatch.setattr(ServingClient, "is_streamlit", lambda client: True)
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["serving_url"] = url
    at.run()
    (error,) = texts(at.error)
    assert "is this dashboard, not a model server" in error and "http://127.0.0.1:8501" in error
