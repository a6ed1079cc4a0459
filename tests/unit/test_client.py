"""pipeline.client (rest, urls, snippets) against a tiny real HTTP server on a free loopback port with
canned TF Serving answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.client.errors import ClientError
from pipeline.client.rest import (
    PredictResult,
    ServingClient,
    available_versions,
    served_version,
    signature_names,
    signature_rows,
)
from pipeline.client.snippets import curl_command, python_snippet, start_command
from pipeline.client.urls import model_url, normalize_url
from tests.support.net import free_port

SERVER_WORK_S = 0.2
"""How long the canned server works on a `delayed` request (so a latency has a known lower bound)."""

STATUS = {"model_version_status": [
    {"version": "3", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    {"version": "2", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}},
    {"version": "1", "state": "END", "status": {"error_code": "OK", "error_message": ""}},
]}
ONLY_3 = {"model_version_status": STATUS["model_version_status"][:1]}
TENSOR = {"dtype": "DT_FLOAT", "name": "serving_default_inputs:0",
          "tensor_shape": {"dim": [{"size": "-1", "name": ""}, {"size": "2", "name": ""}],
                           "unknown_rank": False}}
METADATA = {"model_spec": {"name": "linear_model", "signature_name": "", "version": "3"},
            "metadata": {"signature_def": {"signature_def": {
                "__saved_model_init_op": {"inputs": {}, "outputs": {}, "method_name": ""},
                "serving_default": {"inputs": {"inputs": TENSOR},
                                    "outputs": {"output_0": {**TENSOR, "name": "StatefulPartitionedCall:0"}},
                                    "method_name": "tensorflow/serving/predict", "defaults": {}},
                "other": {"inputs": {"x": {"dtype": "DT_FLOAT", "name": "x:0",
                                           "tensor_shape": {"dim": [], "unknown_rank": True}}},
                          "outputs": {}, "method_name": "tensorflow/serving/predict"}}}}}


def linear(row: list[float]) -> float:
    return 2.0 * row[0] - 1.0 * row[1] + 3.0


class Handler(BaseHTTPRequestHandler):
    """Canned answers keyed by path; remembers the last request for assertions."""

    last: dict = {}

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _answer(self, status: int, body: str | dict, content_type: str = "application/json") -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test): nothing left to answer

    def do_GET(self) -> None:
        Handler.last = {"method": "GET", "path": self.path}
        routes = {
            "/v1/models/linear_model": (200, STATUS),
            "/v1/models/linear_model/versions/3": (200, ONLY_3),
            "/v1/models/linear_model/metadata": (200, METADATA),
            "/v1/models/empty": (404, {"error": "Could not find any versions of model empty"}),
            "/v1/models/linear_model/versions/9": (404, {"error": "Could not find version 9 of model m"}),
            "/v1/models": (400, {"error": "Missing model name in request."}),
            "/v1/models/a%2Fb%3Ac": (200, STATUS),
            "/v1/models/listy": (200, "[1, 2]"),
            "/monitoring/prometheus/metrics": (200, "# TYPE x counter\nx 1\n"),
        }
        if self.path == "/v1/models/slow":
            time.sleep(1.5)
        if self.path in routes:
            self._answer(*routes[self.path])
        else:
            self._answer(404, "<HTML><BODY><H1>Not Found</H1></BODY></HTML>", "text/html")

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.last = {"method": "POST", "path": self.path, "body": body,
                        "content_type": self.headers["Content-Type"]}
        if self.path == "/v1/models/linear_model:predict":
            if "instances" in body:
                self._answer(200, {"predictions": [[linear(r)] for r in body["instances"]]})
            else:
                self._answer(200, {"outputs": [[linear(r)] for r in body["inputs"]]})
        elif self.path == "/v1/models/linear_model/versions/50:predict":
            self._answer(404, {"error": "Servable not found for request: Specific(linear_model, 50)"})
        elif self.path == "/v1/models/linear_model/labels/canary:predict":
            self._answer(400, {"error": "Unrecognized servable version label: canary"})
        elif self.path == "/v1/models/nan:predict":
            self._answer(200, '{"predictions": [[NaN], [Infinity], [-Infinity]]}')
        elif self.path == "/v1/models/delayed:predict":
            time.sleep(SERVER_WORK_S)  # the model's work, as seen from the client
            self._answer(200, {"predictions": [[0.0]]})
        elif self.path.endswith((":regress", ":classify")):
            self._answer(200, {"results": [42.0]})
        else:
            self._answer(400, {"error": f"Malformed request: POST {self.path}"})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def client(server: str) -> ServingClient:
    Handler.last = {}  # each test sees only its own request
    return ServingClient(server, timeout=5.0)


def test_model_status_lists_versions(client: ServingClient) -> None:
    statuses = client.model_status("linear_model")
    assert [s["version"] for s in statuses] == ["3", "2", "1"]
    assert available_versions(statuses) == [3, 2]
    assert client.model_status("linear_model", version=3) == STATUS["model_version_status"][:1]


def test_predict_row_format(client: ServingClient) -> None:
    called = time.perf_counter()
    result = client.predict("linear_model", instances=[[1.0, 2.0], [5.0, 7.0]])
    call_s = time.perf_counter() - called
    assert isinstance(result, PredictResult)
    assert result.values == [[3.0], [6.0]]
    assert result.status_code == 200
    assert result.request == {"instances": [[1.0, 2.0], [5.0, 7.0]]}
    assert result.url.endswith("/v1/models/linear_model:predict")
    assert 0 < result.latency_s <= call_s  # the request's own time, within the call's
    assert Handler.last["content_type"] == "application/json"


def test_predict_columnar_with_signature_and_numpy(client: ServingClient) -> None:
    np = pytest.importorskip("numpy")
    result = client.predict("linear_model", inputs=np.array([[1.0, 2.0]]), signature_name="serving_default")
    assert result.values == [[3.0]]
    assert Handler.last["body"] == {"signature_name": "serving_default", "inputs": [[1.0, 2.0]]}


def test_predict_needs_exactly_one_format(client: ServingClient) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        client.predict("linear_model")
    with pytest.raises(ValueError, match="exactly one"):
        client.predict("linear_model", instances=[[1, 2]], inputs=[[1, 2]])


def test_nan_and_infinity_tokens_parse(client: ServingClient) -> None:
    values = client.predict("nan", instances=[[1.0, 2.0]] * 3).values
    assert values[0][0] != values[0][0] and values[1][0] == float("inf") and values[2][0] == float("-inf")


def test_nan_inputs_are_sent_as_tokens(client: ServingClient) -> None:
    client.predict("linear_model", instances=[[float("nan"), 1.0]])
    assert Handler.last["body"]["instances"][0][0] != Handler.last["body"]["instances"][0][0]


def test_regress_and_classify_values_are_results(client: ServingClient) -> None:
    assert client.regress("linear_model", [{"x": 80.0}], signature_name="regress_x_to_y").values == [42.0]
    assert Handler.last["body"] == {"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]}
    assert client.classify("linear_model", [{"x": 1.0}], context={"c": 1}).values == [42.0]
    assert Handler.last["path"] == "/v1/models/linear_model:classify"
    assert Handler.last["body"] == {"context": {"c": 1}, "examples": [{"x": 1.0}]}


def test_version_and_label_urls(client: ServingClient) -> None:
    with pytest.raises(ClientError) as info:
        client.predict("linear_model", instances=[[1, 2]], version=50)
    assert info.value.status_code == 404
    assert "Servable not found" in info.value.message
    assert "AVAILABLE" in str(info.value)
    with pytest.raises(ClientError) as info:
        client.predict("linear_model", instances=[[1, 2]], label="canary")
    assert info.value.status_code == 400 and "label" in str(info.value)


def test_404_no_versions_says_to_train(client: ServingClient) -> None:
    with pytest.raises(ClientError) as info:
        client.model_status("empty")
    error = info.value
    assert error.status_code == 404
    assert error.message == "Could not find any versions of model empty"
    assert error.url.endswith("/v1/models/empty")
    assert "train and export one" in str(error) and "HTTP 404" in str(error)
    assert "page" not in str(error)  # the client speaks no dashboard wording


def test_unknown_version_status(client: ServingClient) -> None:
    with pytest.raises(ClientError, match="Could not find version 9"):
        client.model_status("linear_model", version=9)


def test_metadata_and_signature_helpers(client: ServingClient) -> None:
    metadata = client.metadata("linear_model")
    assert served_version(metadata) == 3
    assert signature_names(metadata) == ["serving_default", "other"]
    rows = signature_rows(metadata)
    assert rows[0] == {"signature": "serving_default", "kind": "input", "key": "inputs", "dtype": "DT_FLOAT",
                       "shape": "(-1, 2)", "name": "serving_default_inputs:0",
                       "method": "tensorflow/serving/predict"}
    assert rows[1]["kind"] == "output" and rows[1]["key"] == "output_0"
    assert rows[2]["shape"] == "unknown rank"


def test_name_is_percent_encoded(client: ServingClient) -> None:
    client.model_status("a/b:c")
    assert Handler.last["path"] == "/v1/models/a%2Fb%3Ac"


def test_non_json_answer(client: ServingClient, server: str) -> None:
    wrong = ServingClient(server + "/nowhere")
    with pytest.raises(ClientError) as info:
        wrong.model_status("linear_model")
    assert info.value.status_code == 404
    assert "instead of JSON" in str(info.value) and "TensorFlow Serving REST endpoint" in str(info.value)
    with pytest.raises(ClientError, match="not an object"):
        client.model_status("listy")


def test_connection_refused_says_how_to_start() -> None:
    port = free_port()
    down = ServingClient(f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(ClientError) as info:
        down.model_status("linear_model")
    text = str(info.value)
    assert info.value.status_code is None
    assert f"No model server answers at http://127.0.0.1:{port}" in text
    assert "connection refused" in text
    assert f"Start a model server at http://127.0.0.1:{port}" in text
    assert "pipeline.serving" not in text  # how to start one is the caller's business
    assert down.is_up() is False


def test_unreachable_remote_server_is_not_offered_a_local_start() -> None:
    down = ServingClient("http://nonexistent.invalid:8501", timeout=2)
    with pytest.raises(ClientError) as info:
        down.model_status("linear_model")
    assert "No model server answers at http://nonexistent.invalid:8501" in str(info.value)
    assert "pipeline.serving" not in str(info.value) and "fix the server URL" in str(info.value)


def test_timeout(client: ServingClient, server: str) -> None:
    slow = ServingClient(server, timeout=0.3)
    with pytest.raises(ClientError) as info:
        slow.model_status("slow")
    assert info.value.status_code is None
    assert "No answer within 0.3 s" in str(info.value)


def test_is_up_counts_any_http_answer(client: ServingClient) -> None:
    assert client.is_up() is True  # GET /v1/models is a 400 on TF Serving, and that still means "up"
    assert Handler.last == {"method": "GET", "path": "/v1/models"}


def test_latency_covers_the_servers_work(client: ServingClient) -> None:
    """The latency shown to users is the whole round trip, server work included: a server that
    works SERVER_WORK_S before answering can never be reported faster than that."""
    result = client.predict("delayed", instances=[[1.0, 2.0]])
    assert result.latency_s >= SERVER_WORK_S
    assert result.values == [[0.0]]


def test_metrics_text(client: ServingClient, server: str) -> None:
    assert "x 1" in client.metrics_text()
    with pytest.raises(ClientError, match="no Prometheus metrics"):
        client.metrics_text("/nope")


def test_model_url_grammar() -> None:
    base = "http://h:1"
    assert model_url(base, "m") == "http://h:1/v1/models/m"
    assert model_url(base + "/", "m", version=3, verb="predict") == "http://h:1/v1/models/m/versions/3:predict"
    assert model_url(base, "m", label="stable", metadata=True) == "http://h:1/v1/models/m/labels/stable/metadata"
    with pytest.raises(ValueError, match="not both"):
        model_url(base, "m", version=1, label="x")


def test_normalize_url() -> None:
    assert normalize_url("localhost:8501/") == "http://localhost:8501"
    assert normalize_url(" https://example.com ") == "https://example.com"
    for bad in ("", "ftp://x", "http://", "http://h:99999"):
        with pytest.raises(ValueError):
            normalize_url(bad)


def test_snippets_repeat_the_call() -> None:
    url = "http://127.0.0.1:8501/v1/models/linear_model:predict"
    body = {"instances": [[1.0, 2.0], [float("nan"), 7.0]]}
    curl = curl_command(url, body)
    assert curl.startswith(f"curl -sS -X POST {url}")
    assert "'{\"instances\": [[1.0, 2.0], [NaN, 7.0]]}'" in curl
    assert curl_command("http://h/v1/models/m") == "curl -sS http://h/v1/models/m"
    code = python_snippet(url, body)
    compile(code, "snippet", "exec")
    namespace: dict = {}
    exec(code.split("response =")[0], namespace)  # the url/body lines, without the network call
    assert json.loads(namespace["body"], parse_constant=str) == {"instances": [[1.0, 2.0], ["NaN", 7.0]]}
    compile(python_snippet(url), "snippet", "exec")


def test_start_command_names_the_model_and_a_relative_base_path(tmp_path) -> None:
    from pipeline.settings import PROJECT_ROOT

    command = start_command(8123, "linear_model", PROJECT_ROOT / "models" / "linear_model")
    assert command == ("python -m pipeline.serving --rest_api_port 8123 --model_name linear_model "
                       "--model_base_path models/linear_model")
    assert start_command(1, "m", tmp_path / "m").endswith(f"--model_base_path {tmp_path / 'm'}")
