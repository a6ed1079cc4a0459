"""Traffic page under AppTest (through app.py, so the navigation exists) on request logs written in a
temporary run folder as the embedded server writes them: every request newest first, filters, a
replay on two versions against a fake server (the REST client mocked at its boundary), a warm-up
file, downloads, a link to Predict, damaged logs and no logs at all."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.client.errors import ClientError
from pipeline.client.rest import PredictResult, ServingClient
from pipeline.serving import log_files
from pipeline.serving.log_files import Transport
from pipeline.store import traffic
from tests.support.traffic_logs import Call, write_traffic
from tests.unit.test_warmup_file import version_with_signatures

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAGE = "views/traffic.py"
MODEL = "linear_model"
CALLS = [Call([4.0], [4.0], latency_ms=3.0), Call([1.0], [2.5], transport=Transport.GRPC),
         Call([9.0], None, status="INVALID_ARGUMENT", message="bad input x"),
         Call([10.0], [7.0], version=2, label="canary", latency_ms=12.5)]


class FakeServer:
    """Version 1 answers y = 0.5 x + 2, version 2 y = x (they agree at x = 4); version 7 is listed
    AVAILABLE but unloads before the replay reaches it (every request to it is a 404)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int | None, dict]] = []

    def model_status(self, client, model, version=None, label=None):
        return [{"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in ("7", "2", "1")]

    def predict_body(self, client, model, body, version=None, label=None):
        self.sent.append((version, body))
        if version not in (1, 2):
            raise ClientError(f"Servable not found for request: Specific({model}, {version})", url="",
                              status_code=404)
        rows = body["inputs"]["x"]
        values = [[0.5 * r[0] + 2 if version == 1 else r[0]] for r in rows]
        return PredictResult(url="", request=body, response={"outputs": values}, status_code=200,
                             latency_s=0.002 if version == 1 else 0.004)

    def ping(self, client):
        return 0.001

    def is_streamlit(self, client):
        return False


@pytest.fixture
def page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    server = FakeServer()
    for name in ("model_status", "predict_body", "ping", "is_streamlit"):
        method = getattr(server, name)
        monkeypatch.setattr(ServingClient, name, lambda client, *a, _m=method, **k: _m(client, *a, **k))
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("MODEL_BASE_PATH", str(tmp_path / "models" / MODEL))
    prefix = traffic.prefix(tmp_path / "run", MODEL)
    write_traffic(prefix, CALLS, model=MODEL)

    def open_page() -> AppTest:
        at = AppTest.from_file(APP, default_timeout=30).run()
        at.switch_page(PAGE).run()
        assert not at.exception, at.exception
        return at

    return open_page, server, prefix, tmp_path


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_every_request_is_listed_newest_first_with_its_facts(page) -> None:
    open_page, *_ = page
    at = open_page()
    assert texts(at.title) == ["Traffic"]
    table = at.dataframe(key="traffic_table").value
    assert table["inputs"].tolist() == ["x: [[10.0]]", "x: [[9.0]]", "x: [[1.0]]", "x: [[4.0]]"]
    newest = table.iloc[0]
    assert (newest["version / label"], newest["status"], newest["latency (ms)"], newest["outputs"]) == (
        "version 2 (canary)", "OK", 12.5, "y: [[7.0]]")
    assert table["transport"].tolist() == ["REST", "REST", "gRPC", "REST"]
    assert table.iloc[1]["outputs"] == "bad input x"
    assert any("4 of 4 logged request(s), newest first" in c for c in texts(at.caption))


def test_filters_narrow_the_list(page) -> None:
    open_page, *_ = page
    at = open_page()
    at.selectbox(key="traffic_status").set_value("failed").run()
    assert at.dataframe(key="traffic_table").value["status"].tolist() == ["INVALID_ARGUMENT"]
    at.selectbox(key="traffic_status").set_value("any")
    at.selectbox(key="traffic_transport").set_value("gRPC").run()
    assert at.dataframe(key="traffic_table").value["inputs"].tolist() == ["x: [[1.0]]"]
    at.selectbox(key="traffic_transport").set_value("any")
    at.selectbox(key="traffic_version").set_value(2).run()
    assert len(at.dataframe(key="traffic_table").value) == 1


def test_a_replay_on_two_versions_shows_the_differences_largest_first(page) -> None:
    open_page, server, *_ = page
    at = open_page()
    at.selectbox(key="traffic_status").set_value("OK").run()
    at.selectbox(key="traffic_a").set_value("1")
    at.selectbox(key="traffic_b").set_value("2").run()
    at.button(key="traffic_replay_go").click().run()
    assert not at.exception, at.exception
    assert sorted(v for v, _ in server.sent) == [1, 1, 1, 2, 2, 2]
    result = at.dataframe[1].value
    assert result["inputs"].tolist() == ["x: [[10.0]]", "x: [[1.0]]", "x: [[4.0]]"]
    assert result["difference"].tolist() == [3.0, 1.5, 0.0]
    assert result["agrees"].tolist() == [False, False, True]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Agreeing within 1e-06"] == "33%" and metrics["Largest difference"] == "3"
    assert metrics["Latency A (version 1)"] == "2.0 ms" and metrics["Latency B (version 2)"] == "4.0 ms"


def test_a_version_that_is_not_loaded_fails_its_side_readably(page) -> None:
    open_page, *_ = page
    at = open_page()
    at.selectbox(key="traffic_status").set_value("OK").run()
    at.selectbox(key="traffic_a").set_value("1")
    at.selectbox(key="traffic_b").set_value("7").run()
    at.button(key="traffic_replay_go").click().run()
    assert not at.exception, at.exception
    result = at.dataframe[1].value
    assert all(n == "B failed: HTTP 404: Servable not found for request: Specific(linear_model, 7)"
               for n in result["note"])
    assert {m.label: m.value for m in at.metric}["Latency B (version 7)"] == "no answer"


def test_ok_requests_become_a_versions_warm_up_file(page) -> None:
    open_page, _, _, tmp_path = page
    version = version_with_signatures(tmp_path / "models" / MODEL / "2", {"serving_default": ["x"]})
    at = open_page()
    at.button(key="traffic_warmup_go").click().run()
    assert not at.exception, at.exception
    path = version / "assets.extra" / "tf_serving_warmup_requests"
    assert any("Wrote 3 request(s)" in s and "1 not answered OK left out" in s for s in texts(at.success))
    assert path.exists()


def test_one_request_opens_in_predict_with_its_version_and_inputs(page) -> None:
    open_page, *_ = page
    at = open_page()
    links = at.get("page_link")
    [predict] = [link for link in links if link.proto.label == "Open in Predict"]
    assert predict.proto.page == "predict"
    query = parse_qs(predict.proto.query_string)  # the newest request: version 2, x = 10, sent on opening
    assert {k: v[0] for k, v in query.items()} == {
        "version": "2", "format": "columnar", "inputs": '{"inputs":{"x":[[10.0]]}}', "send": "1"}


def test_downloads_are_offered_for_what_is_shown(page) -> None:
    open_page, *_ = page
    at = open_page()
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["TFRecord (PredictionLog)", "JSON"]


def test_a_damaged_log_is_read_up_to_the_damage_and_said(page) -> None:
    open_page, _, prefix, _ = page
    [file] = log_files.log_files(str(prefix))
    data = bytearray(file.read_bytes())
    data[20] ^= 0xFF  # inside the first record's data
    file.write_bytes(bytes(data))
    at = open_page()
    assert len(at.dataframe(key="traffic_table").value) == 3
    assert any("1 damaged record(s) skipped" in w for w in texts(at.warning))


def test_no_logs_says_how_to_get_some(page) -> None:
    open_page, _, prefix, _ = page
    for path in log_files.log_files(str(prefix)):
        path.unlink()
    at = open_page()
    assert not at.dataframe
    assert any("No request logged for `linear_model` yet" in i for i in texts(at.info))
    assert any("logging_config" in c.value for c in at.code)


def test_the_size_kept_per_model_can_be_changed(page) -> None:
    open_page, _, _, tmp_path = page
    at = open_page()
    assert any("The embedded server's request logs: `linear_model`" in c for c in texts(at.caption))
    at.number_input(key="traffic_cap_mib").set_value(64)
    [keep] = [b for b in at.button if b.label == "Keep this much"]
    keep.click().run()
    assert any("Keeping 64 MiB per model" in s for s in texts(at.success))
    assert traffic.max_bytes(tmp_path / "run") == 64 * traffic.MiB
