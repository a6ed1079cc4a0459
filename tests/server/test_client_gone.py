"""A client that goes away frees its admission slot at once (issue 19 item 3), REST and gRPC alike.

The one request path (`pipeline/serving/dataplane.py`) cancels a request whose client disconnected
(REST: the connection closed; gRPC: the call cancelled): its `--max_pending_requests` slot is free
at once, not when its model call ends. Here the model call runs until the test opens its gate
(after every wait of the test), and the server admits one request at a time; whether the slot is taken is
seen the way a user sees it: another model request is refused 503 UNAVAILABLE (overloaded) while it
is, and answered (404: no such model) once it is not. The pending-requests gauge agrees.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import grpc
import pytest

from tests.server.grpc_harness import GrpcServer, predict_request, start_grpc_server
from tests.server.harness import metric_value, wait_for

WAIT = 60.0


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    """Each test's abandoned call keeps one worker of its front end busy (two each) until the
    gate opens at the end of the module."""
    from tests.server.savedmodels import export_gated_rows

    tmp_path = tmp_path_factory.mktemp("one_slot")
    export_gated_rows(tmp_path / "slow" / "1", tmp_path / "gate")  # x > 0 runs until the gate opens
    server = start_grpc_server(["--model_name=slow", f"--model_base_path={tmp_path / 'slow'}",
                                "--enable_prometheus", "--file_system_poll_wait_seconds=0",
                                "--max_pending_requests=1", "--rest_api_timeout_in_ms=3600000",
                                "--rest_api_num_threads=2", "--grpc_max_threads=2"],
                               tmp_path / "server.log", batching="batching_off")
    yield server
    (tmp_path / "gate").touch()  # the abandoned calls end; their answers go nowhere
    server.stop()


def pending(server: GrpcServer) -> float:
    return metric_value(server.server, "tensorflow_serving_pending_requests")


def another_request_status(server: GrpcServer) -> int:
    """A model request's HTTP status: 503 while the one slot is taken, 404 (no such model) if not."""
    return server.server.post("/v1/models/absent:predict", {"instances": [1.0]}).status_code


def assert_the_slot_is_freed_by(server: GrpcServer, leave) -> None:
    wait_for(lambda: pending(server) == 1, WAIT)  # the sleeping request holds the one slot
    assert another_request_status(server) == 503
    leave()
    wait_for(lambda: pending(server) == 0, WAIT)
    assert another_request_status(server) == 404


def test_a_rest_client_that_disconnects_frees_its_slot(one_slot: GrpcServer) -> None:
    body = json.dumps({"instances": [[1.0]]}).encode()
    client = socket.create_connection(("127.0.0.1", one_slot.server.port))
    client.sendall(b"POST /v1/models/slow:predict HTTP/1.1\r\nHost: localhost\r\n"
                   b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode()
                   + b"\r\n\r\n" + body)
    try:
        assert_the_slot_is_freed_by(one_slot, client.close)
    finally:
        client.close()


def test_a_grpc_client_that_cancels_frees_its_slot(one_slot: GrpcServer) -> None:
    call = one_slot.prediction.Predict.future(predict_request("slow", [1.0], shape=[1, 1]), timeout=3600)
    try:
        assert_the_slot_is_freed_by(one_slot, call.cancel)
    finally:
        call.cancel()
    with pytest.raises(grpc.FutureCancelledError):
        call.result()
    # the abandoned call still runs in its worker; the server answers everything else
    assert one_slot.server.get("/v1/models/slow").json()["model_version_status"][0]["state"] == "AVAILABLE"

