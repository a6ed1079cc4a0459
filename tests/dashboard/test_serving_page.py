"""Serving page under AppTest, with the client mocked at its boundary (ServingClient methods)
and the embedded-server controls pointed at a temporary run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from pipeline.client import local_server as server_process
from pipeline.client.errors import ClientError
from pipeline.client.grpc import GrpcClient
from pipeline.client.rest import ServingClient
from tests.support.kept_charts import kept_figures

PAGE = str(Path(__file__).resolve().parents[2] / "dashboard" / "views" / "serving.py")
OK = {"error_code": "OK", "error_message": ""}
FAILED = {"error_code": "UNKNOWN", "error_message": "bad model"}
STATUSES = [{"version": "3", "state": "AVAILABLE", "status": OK},
            {"version": "2", "state": "END", "status": FAILED}]
TENSOR = {"dtype": "DT_FLOAT", "tensor_shape": {"dim": [{"size": "-1"}, {"size": "2"}]}, "name": "in:0"}
SIGNATURES = {
    "serving_default": {"inputs": {"inputs": TENSOR}, "outputs": {"output_0": {**TENSOR, "name": "out:0"}},
                        "method_name": "tensorflow/serving/predict"},
    "__saved_model_init_op": {"inputs": {}, "outputs": {}, "method_name": ""}}
METADATA = {"model_spec": {"name": "linear_model", "version": "3"},
            "metadata": {"signature_def": {"signature_def": SIGNATURES}}}


class FakeServer:
    """What the mocked ServingClient answers; a test changes the fields to stage a situation."""

    def __init__(self) -> None:
        self.down: ClientError | None = None
        self.status_error: ClientError | None = None
        self.statuses: list[dict[str, Any]] = STATUSES
        self.urls: list[str] = []
        self.metrics: list[str] = []
        """Exposition texts answered one per scrape (the last one repeats)."""

    def ping(self, client: ServingClient) -> float:
        self.urls.append(client.base_url)
        if self.down:
            raise self.down
        return 0.004

    def model_status(self, client: ServingClient, model: str, version=None, label=None) -> list[dict]:
        if self.down:
            raise self.down
        if self.status_error:
            raise self.status_error
        return self.statuses

    def metadata(self, client: ServingClient, model: str, version=None, label=None) -> dict:
        return METADATA

    def metrics_text(self, client: ServingClient, path: str = "") -> str:
        if not self.metrics:
            raise ClientError("The server exports no Prometheus metrics here", url=client.base_url,
                              status_code=404)
        return self.metrics.pop(0) if len(self.metrics) > 1 else self.metrics[0]

    def is_streamlit(self, client: ServingClient) -> bool:
        return False

    grpc_status: str | None = "SERVING"
    """What the gRPC health service answers; None: nothing listens at the gRPC target."""

    def grpc_health(self, client: GrpcClient) -> str:
        if self.grpc_status is None:
            raise ClientError("UNAVAILABLE: failed to connect to all addresses", url=client.url)
        return self.grpc_status


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeServer:
    server = FakeServer()
    for name in ("ping", "model_status", "metadata", "metrics_text", "is_streamlit"):
        method = getattr(server, name)
        monkeypatch.setattr(ServingClient, name, lambda client, *a, _m=method, **k: _m(client, *a, **k))
    monkeypatch.setattr(GrpcClient, "health", lambda client, service="": server.grpc_health(client))
    monkeypatch.setenv("SERVING_RUN_DIR", str(tmp_path))
    # the default addresses, which this fake stands in for (tests/conftest.py points them elsewhere)
    monkeypatch.setenv("SERVING_URL", "http://127.0.0.1:8501")
    monkeypatch.setenv("GRPC_TARGET", "127.0.0.1:8500")
    return server


def refused(url: str = "http://127.0.0.1:8501") -> ClientError:
    return ClientError(f"No model server answers at {url} (connection refused)", url=url + "/v1/models",
                        hint="Start it on the Serving page or run `python -m pipeline.serving ...`.")


def run_page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=30).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_up_shows_badge_versions_and_signatures(fake: FakeServer) -> None:
    at = run_page()
    assert any("up · 4 ms" in m for m in texts(at.markdown))
    status = at.dataframe[0].value
    assert status["version"].tolist() == [3, 2]
    assert status["state"].tolist() == ["AVAILABLE", "unloaded (END)"]
    assert status["error_message"].tolist() == ["", "bad model"]
    signatures = at.dataframe[1].value
    assert signatures[["kind", "key", "dtype", "shape"]].values.tolist() == [
        ["input", "inputs", "DT_FLOAT", "(-1, 2)"], ["output", "output_0", "DT_FLOAT", "(-1, 2)"]]
    assert any("Signatures of version 3" in m for m in texts(at.markdown))
    assert not at.error


def test_server_down_is_a_readable_error(fake: FakeServer) -> None:
    fake.down = refused()
    at = run_page()
    assert any("down" in m for m in texts(at.markdown))
    (error,) = texts(at.error)
    assert "No model server answers at http://127.0.0.1:8501" in error
    assert "Start it with Start below" in error  # on the Serving page itself, not "on the Serving page"
    assert at.button(key="serving_start").disabled is False  # local URL, nothing running: can start


def test_timeout_is_a_readable_error(fake: FakeServer) -> None:
    fake.down = ClientError("No answer within 5 s", url="http://127.0.0.1:8501/v1/models", hint="Try again.")
    at = run_page()
    assert any("No answer within 5 s" in e for e in texts(at.error))


def test_no_versions_is_a_warning_that_says_to_train(fake: FakeServer) -> None:
    fake.status_error = ClientError("Could not find any versions of model linear_model", status_code=404,
                                     url="http://127.0.0.1:8501/v1/models/linear_model",
                                     hint="train and export one on the Train page")
    at = run_page()
    (warning,) = texts(at.warning)
    assert "Could not find any versions" in warning and "Train page" in warning
    assert not at.error


def test_no_available_version_is_explained(fake: FakeServer) -> None:
    fake.statuses = [{"version": "1", "state": "LOADING", "status": OK}]
    at = run_page()
    assert any("No version is AVAILABLE yet" in i for i in texts(at.info))


def test_changing_the_url_and_model(fake: FakeServer) -> None:
    at = run_page()
    at.text_input(key="serving_url_input").set_value("localhost:9000/").run()
    assert at.session_state["serving_url"] == "http://localhost:9000"
    assert fake.urls[-1] == "http://localhost:9000"
    at.text_input(key="serving_url_input").set_value("ftp://nope").run()
    assert any("not a server URL" in e for e in texts(at.error))
    assert at.session_state["serving_url"] == "http://localhost:9000"
    picker = at.selectbox(key="model_picker")
    picker.options.append("../evil")  # typed: AppTest only selects listed options
    picker.set_value("../evil").run()
    assert any("Model not changed" in e for e in texts(at.error))
    picker = at.selectbox(key="model_picker")
    picker.options.append("other_model")
    picker.set_value("other_model").run()
    assert at.session_state["model_name"] == "other_model"
    assert any("Versions of `other_model`" in m for m in texts(at.markdown))
    assert not at.exception


def test_remote_url_disables_the_embedded_controls(fake: FakeServer) -> None:
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["serving_url"] = "http://tf-serving.example.com:8501"
    at.run()
    assert at.button(key="serving_start").disabled and at.button(key="serving_restart").disabled
    assert at.button(key="serving_stop").disabled
    assert any("not on this machine" in c for c in texts(at.caption))


def test_start_and_stop_the_embedded_server(fake: FakeServer, monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    fake.down = refused("http://127.0.0.1:8765")
    calls: list[tuple] = []
    monkeypatch.setattr(server_process, "start", lambda *a, **kw: calls.append(("start", *a, kw)))
    monkeypatch.setattr(server_process, "stop", lambda **kw: calls.append(("stop",)))
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["serving_url"] = "http://127.0.0.1:8765"
    at.run()
    assert at.button(key="serving_stop").disabled  # nothing recorded as running
    at.number_input(key="serving_loaded_versions").set_value(3)
    at.button(key="serving_start").click().run()
    assert not at.exception
    (_, port, host, settings) = calls[0]
    assert (port, host) == (8765, "127.0.0.1")
    assert settings["loaded_versions"] == 3 and settings["model_name"] == "linear_model"
    assert any("Started the embedded server" in s for s in texts(at.success))
    at.run()  # the next poll: the note is not repeated, the badge tells the state
    assert not any("Started" in s for s in texts(at.success))


def test_log_tail_is_shown(fake: FakeServer, tmp_path: Path) -> None:
    (tmp_path / "serving.log").write_text("line one\nExporting HTTP/REST API at:localhost:8501 ...\n")
    at = run_page()
    assert any("Exporting HTTP/REST API" in c for c in texts(at.code))


def test_tensorflow_cpp_noise_is_kept_out_of_the_log_shown(fake: FakeServer, tmp_path: Path) -> None:
    (tmp_path / "serving.log").write_text(
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
        "I0000 00:00:1795999020.544557    7621 port.cc:153] oneDNN custom operations are on.\n"
        "I0000 00:00:1795999020.545046    7621 cudart_stub.cc:31] Could not find cuda drivers\n"
        "2026-11-30 00:37:02,661 INFO pipeline.serving: Exporting HTTP/REST API at:127.0.0.1:8501 ...\n")
    at = run_page()
    (log,) = [c for c in texts(at.code) if "Exporting HTTP/REST API" in c]
    assert "oneDNN" not in log and "cuda" not in log and "absl" not in log
    assert any("3 TensorFlow C++ info line(s) hidden" in c for c in texts(at.caption))


def test_exited_embedded_server_is_reported(fake: FakeServer, monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    exited = server_process.ServerStatus(running=False, log_path=tmp_path / "serving.log", pid=1, port=8501,
                                         exit_code=1)
    monkeypatch.setattr(server_process, "status", lambda run_dir=None: exited)
    at = run_page()
    assert any("exited with status 1" in e for e in texts(at.error))


def test_embedded_server_starting(fake: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake.down = refused()
    starting = server_process.ServerStatus(running=True, log_path=tmp_path / "serving.log", pid=42, port=8501,
                                           host="127.0.0.1")
    monkeypatch.setattr(server_process, "status", lambda run_dir=None: starting)
    at = run_page()
    assert any("starting" in m for m in texts(at.markdown))
    assert any("(pid 42) is starting" in i for i in texts(at.info)) and not at.error
    assert at.button(key="serving_start").disabled and not at.button(key="serving_stop").disabled


def exposition(ok: int, errors: int, fast: int) -> str:
    """TF Serving's metrics text (ours is the same): ``ok`` + ``errors`` predict requests, ``ok``
    timed (OK only), ``fast`` of them under 5 ms (latencies in microseconds)."""
    latency, count = ":tensorflow:serving:request_latency", ":tensorflow:serving:request_count"
    labels = 'model_name="linear_model",API="predict",entrypoint="REST"'
    return "\n".join([
        f"# TYPE {count} counter",
        f'{count}{{model_name="linear_model",status="OK"}} {ok}',
        f'{count}{{model_name="linear_model",status="INVALID_ARGUMENT"}} {errors}',
        f"# TYPE {latency} histogram",
        f'{latency}_bucket{{{labels},le="5000"}} {fast}',
        f'{latency}_bucket{{{labels},le="50000"}} {ok}',
        f'{latency}_bucket{{{labels},le="+Inf"}} {ok}',
        f"{latency}_sum{{{labels}}} 100000",
        f"{latency}_count{{{labels}}} {ok}", ""])


def test_traffic_is_charted_from_prometheus_metrics(fake: FakeServer) -> None:
    fake.metrics = [exposition(10, 0, 10), exposition(30, 5, 20)]
    at = run_page()
    assert [m.value for m in at.metric][:2] == ["10", "0"]
    at.run()  # the next poll adds a reading: rates and percentiles over the interval
    assert [m.value for m in at.metric][:2] == ["35", "5"]
    charts = kept_figures(at)  # redrawn in place at each poll
    assert set(charts) == {"serving_traffic_chart", "serving_latency_chart"} and not at.get("plotly_chart")
    traffic = {trace["name"]: trace["y"] for trace in charts["serving_traffic_chart"]["data"]}
    assert traffic["errors/s"][-1] > 0 and traffic["requests/s"][-1] > 0
    assert "p99" in {trace["name"] for trace in charts["serving_latency_chart"]["data"]}
    assert not any("# TYPE" in c for c in texts(at.code))  # no raw exposition text on the page


def test_missing_metrics_are_explained(fake: FakeServer) -> None:
    at = run_page()
    assert any("No metrics: The server exports no Prometheus metrics" in c for c in texts(at.caption))


def test_both_endpoints_are_shown(fake: FakeServer) -> None:
    at = run_page()
    captions = texts(at.caption)
    assert any("REST `http://127.0.0.1:8501`" in c and "gRPC `127.0.0.1:8500`" in c for c in captions)


def test_not_a_url_is_refused(fake: FakeServer) -> None:
    at = run_page()
    at.text_input(key="serving_url_input").set_value("not a url").run()
    assert any("'not a url' is not a server URL" in e for e in texts(at.error))
    assert "serving_url" not in at.session_state  # the default URL is kept


def test_url_of_the_dashboard_itself_is_not_a_healthy_server(fake: FakeServer,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlit import config

    monkeypatch.setattr(ServingClient, "is_streamlit", lambda client: True)
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["serving_url"] = f"http://127.0.0.1:{config.get_option('server.port')}"
    at.run()
    assert any("not a model server" in m for m in texts(at.markdown))
    assert not any("up ·" in m for m in texts(at.markdown))
    assert any("is this dashboard, not a model server" in e for e in texts(at.error))


def test_after_a_deliberate_stop_the_page_says_stopped_not_an_error(
        fake: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    running = server_process.ServerStatus(running=True, log_path=tmp_path / "serving.log", pid=42, port=8501,
                                          host="127.0.0.1")
    state = {"status": running}
    monkeypatch.setattr(server_process, "status", lambda run_dir=None: state["status"])

    def stop(**kw) -> bool:
        state["status"] = server_process.ServerStatus(running=False, log_path=tmp_path / "serving.log")
        fake.down = refused()
        return True

    monkeypatch.setattr(server_process, "stop", stop)
    at = run_page()
    at.button(key="serving_stop").click().run()
    assert not at.error
    assert any("stopped" in m for m in texts(at.markdown))
    assert any("You stopped the embedded server" in i for i in texts(at.info))
    assert at.button(key="serving_start").disabled is False


def test_grpc_health_is_shown_beside_rest(fake: FakeServer) -> None:
    at = run_page()
    assert any("gRPC SERVING" in m for m in texts(at.markdown))
    fake.grpc_status = None
    at.run()
    assert any("gRPC down" in m for m in texts(at.markdown))
    assert any("gRPC `127.0.0.1:8500`: UNAVAILABLE" in c for c in texts(at.caption))
    assert not at.error  # REST is what the dashboard needs: a silent gRPC port is not an error


def test_a_quiet_window_says_so_instead_of_an_empty_latency_chart(fake: FakeServer) -> None:
    fake.metrics = [exposition(10, 0, 10), exposition(10, 0, 10)]
    at = run_page()
    at.run()
    assert any("No inference request in this window yet" in i for i in texts(at.info))
    assert set(kept_figures(at)) == {"serving_traffic_chart"}  # the rate chart only


def test_readings_across_a_gap_start_a_fresh_window(fake: FakeServer) -> None:
    """After Stop → Start (or a paused page) the chart does not span the time nobody polled."""
    import time

    from pipeline.client.server_metrics import Scrape

    fake.metrics = [exposition(10, 0, 10)]
    at = AppTest.from_file(PAGE, default_timeout=30)
    at.session_state["serving_scrapes"] = [Scrape(time.time() - 600, {"OK": 3.0})]
    at.run()
    assert any("Charts start with the next reading" in c for c in texts(at.caption))
    assert len(at.session_state["serving_scrapes"]) == 1
