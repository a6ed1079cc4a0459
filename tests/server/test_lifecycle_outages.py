"""TF Serving's promises about versions on disk, on a live server (issue 19 item 1).

- A base path renamed away and back under load (a rename-swap deploy, an NFS blip, a remount):
  the failed polls change nothing, every request is answered 200, the problem is logged once. A
  base path that exists and holds no version unloads the model, as TF Serving.
- Removing a model whose version is waiting to retry its load: `HandleReloadConfigRequest` returns
  at once, not after the retry interval (an hour here, against a two-minute RPC deadline).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from tensorflow_serving.apis import model_management_pb2

from tests.reliability.load import PredictLoad
from tests.server.grpc_harness import start_grpc_server
from tests.server.harness import (
    BATCHING_MODES,
    Models,
    Server,
    install_version,
    ok_json,
    start_server,
    wait_for,
)

MISSING = "Could not find base path"
LOAD = 120.0  # a SavedModel load on a busy 2-core machine
MORE_REQUESTS = 300


def states(server: Server, model: str) -> dict[str, str]:
    response = server.get(f"/v1/models/{model}")
    if response.status_code == 404:
        return {}
    return {s["version"]: s["state"] for s in ok_json(response)["model_version_status"]}


def more_requests(load: PredictLoad, count: int = MORE_REQUESTS) -> None:
    """Let the load send `count` more requests (many polls of 0.1 s pass meanwhile)."""
    target = load.sent + count
    wait_for(lambda: load.sent >= target, LOAD)


@pytest.mark.parametrize("batching", BATCHING_MODES)
def test_a_base_path_renamed_away_and_back_under_load_loses_no_request(
        batching: str, models: Models, tmp_path: Path) -> None:
    base = tmp_path / "linear"
    install_version(models.linear_keras, base, "1")
    server = start_server(["--model_name=linear", f"--model_base_path={base}",
                           "--file_system_poll_wait_seconds=0.1"], tmp_path / "server.log", batching=batching)
    load = PredictLoad(server.port, "/v1/models/linear:predict", threads=4).start()
    try:
        more_requests(load)
        base.rename(tmp_path / "linear.away")
        wait_for(lambda: MISSING in server.log(), LOAD)  # a poll found it missing...
        more_requests(load)                                # ...and many more polls did too
        (tmp_path / "linear.away").rename(base)
        more_requests(load)
    finally:
        outcomes = load.stop()
    failed = [(o.status, o.error or o.body[:200]) for o in outcomes if o.status != 200]
    assert failed == [], f"{len(failed)} of {len(outcomes)} requests failed, e.g. {failed[:3]}"
    assert server.log().count(MISSING) == 1, "the missing base path is logged once, not at every poll"
    assert states(server, "linear") == {"1": "AVAILABLE"}

    shutil.rmtree(base / "1")  # present but empty: nothing is aspired, the model unloads
    wait_for(lambda: states(server, "linear") == {"1": "END"}, LOAD)
    server.stop()


RETRYING = """
model_config_list {{
  config {{ name: 'keep' base_path: '{root}/keep' model_platform: 'tensorflow' }}
  config {{ name: 'broken' base_path: '{root}/broken' model_platform: 'tensorflow' }}
}}
"""
RETRY_INTERVAL_MICROS = 3600 * 10**6  # an hour: far longer than any scheduling delay or RPC deadline
RPC_DEADLINE = 120.0


def test_removing_a_model_during_a_retrying_load_returns_at_once(models: Models, tmp_path: Path) -> None:
    install_version(models.half_plus_two, tmp_path / "keep", "1")
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    config = tmp_path / "models.config"
    config.write_text(RETRYING.format(root=tmp_path))
    server = start_grpc_server([f"--model_config_file={config}", "--max_num_load_retries=5",
                                f"--load_retry_interval_micros={RETRY_INTERVAL_MICROS}"],
                               tmp_path / "server.log")
    try:
        # The server answers once each model tried its versions: broken's first attempt failed,
        # and it waits an hour to retry.
        assert states(server.server, "broken") == {"1": "LOADING"}
        request = model_management_pb2.ReloadConfigRequest()
        entry = request.config.model_config_list.config.add(name="keep", base_path=str(tmp_path / "keep"))
        entry.model_platform = "tensorflow"
        response = server.model_service.HandleReloadConfigRequest(request, timeout=RPC_DEADLINE)
        assert response.status.error_code == 0
        wait_for(lambda: states(server.server, "broken") == {"1": "END"}, LOAD)  # the retry was cancelled
        assert "was cancelled" in server.server.log()
        assert ok_json(server.server.post("/v1/models/keep:predict", {"instances": [1.0]})) == {
            "predictions": [2.5]}
    finally:
        server.stop()
