"""Where a request's time goes (issue 22 item 3), on a real server over REST and gRPC alike: the
request parse, worker queue and response write histograms count exactly the OK inference requests
of each entrypoint and API (as `request_latency` does), and the Load page's breakdown of a burst
(two scrapes, `pipeline.client.breakdown`) shows every stage, each nested in the whole request.
Both batching modes: with batching the batch queue is a stage of its own, inside the model run.
No timing bounds: only counts, and sums that nesting guarantees.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from tensorflow_serving.apis import regression_pb2

from pipeline.client.breakdown import breakdown
from tests.server.grpc_harness import RPC_TIMEOUT, GrpcServer, predict_request, rpc_error, start_grpc_server
from tests.server.harness import BATCHING_MODES, Models, error_of, install_version, ok_json

PATH = "/monitoring/prometheus/metrics"
MODEL = "hpt"
STAGE_METRICS = ("tensorflow_serving_request_parse_latency", "tensorflow_serving_worker_queuing_latency",
                 "tensorflow_serving_response_write_latency")
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
BURST = 12  # predicts per transport, sent 6 at a time so that batching merges some


@pytest.fixture(scope="module", params=BATCHING_MODES)
def server(models: Models, tmp_path_factory: pytest.TempPathFactory,
           request: pytest.FixtureRequest) -> Iterator[GrpcServer]:
    root = tmp_path_factory.mktemp("breakdown")
    install_version(models.half_plus_two, root / MODEL, "1")
    running = start_grpc_server([f"--model_name={MODEL}", f"--model_base_path={root / MODEL}",
                                 "--enable_prometheus", "--file_system_poll_wait_seconds=0"],
                                root / "server.log", batching=request.param)
    yield running
    running.stop()


def scrape(server: GrpcServer) -> str:
    response = server.server.get(PATH)
    assert response.status_code == 200, response.text
    return response.text


def counts(text: str, name: str) -> dict[tuple[str, str], float]:
    """`{(entrypoint, API): count}` of histogram `name` for the model, from exposition `text`."""
    found: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{re.escape(name)}_count\{{(.*)\}} (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(1)))
            if labels["model_name"] == MODEL:
                key = (labels["entrypoint"], labels["API"])
                found[key] = found.get(key, 0.0) + float(match.group(2))
    return found


def delta(before: str, after: str, name: str) -> dict[tuple[str, str], float]:
    old, new = counts(before, name), counts(after, name)
    return {key: value - old.get(key, 0.0) for key, value in new.items() if value - old.get(key, 0.0)}


def regress_request(x: float) -> regression_pb2.RegressionRequest:
    request = regression_pb2.RegressionRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = "regress_x_to_y"
    request.input.example_list.examples.add().features.feature["x"].float_list.value.append(x)
    return request


def burst(server: GrpcServer) -> None:
    """BURST predicts over each transport at once, one REST classify, one gRPC regress, and a
    refused request on each (not OK: not in the histograms)."""
    def rest(x: float) -> None:
        assert ok_json(server.server.post(f"/v1/models/{MODEL}:predict", {"instances": [x]})) == {
            "predictions": [0.5 * x + 2]}

    def over_grpc(x: float) -> None:
        answer = server.prediction.Predict(predict_request(MODEL, [x]), timeout=RPC_TIMEOUT)
        assert list(answer.outputs["y"].float_val) == [0.5 * x + 2]

    with ThreadPoolExecutor(6) as pool:
        for future in [pool.submit(send, float(x)) for x in range(BURST) for send in (rest, over_grpc)]:
            future.result()
    classified = ok_json(server.server.post(f"/v1/models/{MODEL}:classify",
                                            {"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}))
    assert classified == {"results": [[["", 3.0]]]}
    regressed = server.prediction.Regress(regress_request(4.0), timeout=RPC_TIMEOUT)
    assert [r.value for r in regressed.result.regressions] == [4.0]
    error_of(server.server.post(f"/v1/models/{MODEL}:predict", {"instances": ["x"]}), 400)
    refused = rpc_error(server.prediction.Predict, predict_request(MODEL, [1.0], key="nope"))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_parse_queue_and_write_count_the_ok_requests_of_each_entrypoint_and_api(server: GrpcServer) -> None:
    before = scrape(server)
    burst(server)
    after = scrape(server)
    expected = {("REST", "predict"): BURST, ("GRPC", "Predict"): BURST, ("REST", "classify"): 1,
                ("GRPC", "Regress"): 1}
    assert delta(before, after, REQUEST_LATENCY) == expected
    for name in STAGE_METRICS:
        assert delta(before, after, name) == expected, name
    assert "# TYPE tensorflow_serving_request_parse_latency histogram" in after


def test_the_breakdown_shows_every_stage_nested_in_the_whole_request(server: GrpcServer) -> None:
    before = scrape(server)
    burst(server)
    found = breakdown(before, scrape(server), MODEL)
    stages = {stage.key: stage for stage in found.stages}
    batching = "\ntensorflow_serving_batching_enabled 1\n" in scrape(server)
    required = {"request", "parse", "queue", "run", "write"}
    assert required | ({"batch_queue", "batch_size"} if batching else set()) <= set(stages), found.missing
    whole = stages["request"]
    assert whole.count == 2 * BURST + 2 and whole.mean is not None
    parts = [stages[key] for key in ("parse", "queue", "run", "write")]
    for stage in parts:  # one observation per OK request, each inside that request's time
        assert stage.count == whole.count and stage.mean is not None, stage
        assert stage.mean <= whole.mean, stage
    assert sum(stage.mean * stage.count for stage in parts) <= whole.mean * whole.count  # type: ignore[operator]
    if batching:  # each request's wait for its batch is inside its model run, as TF Serving counts it
        queued, run = stages["batch_queue"], stages["run"]
        assert queued.count > 0 and queued.mean * queued.count <= run.mean * run.count  # type: ignore[operator]
