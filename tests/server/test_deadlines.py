"""Deadlines reach the model (issue 23 item 4): a timed-out call stops, as TF Serving's does.

TF Serving hands `--rest_api_timeout_in_ms` and a gRPC client's deadline to the session as
`RunOptions.timeout_in_ms`; a session run still going then is cancelled and the request answers
DEADLINE_EXCEEDED `Timed out waiting for notification`. The `spin` model loops in its graph for as
many steps as its input asks (1e12: days), so only a cancelled run ever ends: the server's own
gauge of requests in flight must fall back to 0, and the next request is answered.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests.server.grpc_harness import GrpcServer, predict_request, rpc_error, start_grpc_server
from tests.server.harness import BATCHING_MODES, error_of, metric_value, ok_json, wait_for

FOREVER = 1e12  # graph loop steps: far longer than any test
WAIT = 120.0


@pytest.fixture(scope="module", params=BATCHING_MODES)
def spinning(tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> Iterator[GrpcServer]:
    from tests.server.savedmodels import export_spin

    root = tmp_path_factory.mktemp("spin")
    export_spin(root / "spin" / "1")
    server = start_grpc_server(["--model_name=spin", f"--model_base_path={root / 'spin'}",
                                "--rest_api_timeout_in_ms=1000", "--enable_prometheus",
                                "--file_system_poll_wait_seconds=0"], root / "server.log",
                               batching=request.param)
    yield server
    server.stop()


def in_flight(server: GrpcServer) -> float:
    return metric_value(server.server, "tensorflow_serving_pending_requests")


def test_a_rest_timeout_stops_the_model_call_with_tf_servings_answer(spinning: GrpcServer) -> None:
    response = spinning.server.post("/v1/models/spin:predict", {"instances": [[FOREVER]]})
    assert error_of(response, 504) == "Timed out waiting for notification"
    wait_for(lambda: in_flight(spinning) == 0, WAIT)  # the session run was cancelled, not left running
    assert ok_json(spinning.server.post("/v1/models/spin:predict", {"instances": [[0.0]]})) == {
        "predictions": [[0.0]]}


def test_a_grpc_deadline_stops_the_model_call(spinning: GrpcServer) -> None:
    error = rpc_error(spinning.prediction.Predict, predict_request("spin", [FOREVER], shape=[1, 1]),
                      timeout=1.0)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: in_flight(spinning) == 0, WAIT)
    answer = spinning.prediction.Predict(predict_request("spin", [3.0], shape=[1, 1]), timeout=WAIT)
    assert list(answer.outputs["y"].float_val) == [6.0]
