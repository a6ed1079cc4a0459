"""A running server follows its models.config (`--model_config_file_poll_wait_seconds`): a model
added, its policy changed to specific versions, a label added, a bad file ignored, the model
removed, all while it serves, seen from the status and predict endpoints. Started with upstream's
test command-line flags (`--grpc_socket_path`, `--grpc_channel_arguments`, ...), which must not
stop it from starting."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.server.harness import (
    Models,
    Server,
    free_port,
    install_version,
    metric_value,
    start_server,
    wait_for,
)

RELOAD_TIMEOUT = 60.0
ENTRY = "config {{ name: '{name}' base_path: '{path}' model_platform: 'tensorflow' {extra} }}"


def write_config(path: Path, *entries: str) -> None:
    """Write models.config in one rename, as an operator's deploy tool would."""
    staging = path.with_suffix(".tmp")
    staging.write_text("model_config_list { " + " ".join(entries) + " }")
    staging.rename(path)


def status_of(server: Server, name: str) -> dict[str, str]:
    """version -> state from GET /v1/models/{name}, {} while the model is unknown."""
    response = server.get(f"/v1/models/{name}")
    if response.status_code == 404:
        return {}
    assert response.status_code == 200, response.text
    return {s["version"]: s["state"] for s in response.json()["model_version_status"]}


def predict(server: Server, path: str) -> requests.Response:
    return server.post(f"/v1/models/{path}:predict", {"instances": [1.0]})


def test_models_added_changed_relabelled_and_removed_while_serving(models: Models, tmp_path: Path) -> None:
    base = tmp_path / "hpt"
    install_version(models.half_plus_two, base, "1")      # 0.5 x + 2
    install_version(models.half_plus_three, base, "2")    # 0.5 x + 3
    stay = tmp_path / "stay"
    install_version(models.half_plus_two, stay, "1")
    config = tmp_path / "models.config"
    kept = ENTRY.format(name="kept", path=stay, extra="")
    write_config(config, kept)
    server = start_server([
        f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1",
        f"--port={free_port()}", f"--grpc_socket_path={tmp_path / 'grpc.sock'}",
        "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb",
        "--rest_api_num_threads=4", "--tensorflow_intra_op_parallelism=1",
        "--tensorflow_inter_op_parallelism=1", "--enable_model_warmup=true",
        "--num_request_iterations_for_warmup=1", "--flush_filesystem_caches=false", "--enable_prometheus",
    ], tmp_path / "server.log")
    try:
        assert "--flush_filesystem_caches=False has no effect here" in server.log()
        assert status_of(server, "hpt") == {}

        write_config(config, kept, ENTRY.format(name="hpt", path=base, extra=""))
        wait_for(lambda: status_of(server, "hpt") == {"2": "AVAILABLE"}, RELOAD_TIMEOUT)
        assert predict(server, "hpt").json() == {"predictions": [3.5]}
        # a model the reload added is counted like one configured at start-up
        assert metric_value(server, ":tensorflow:serving:request_latency_count", model_name="hpt",
                            API="predict") == 1.0

        specific = "model_version_policy { specific { versions: 1 versions: 2 } }"
        write_config(config, kept, ENTRY.format(name="hpt", path=base, extra=specific))
        wait_for(lambda: status_of(server, "hpt") == {"2": "AVAILABLE", "1": "AVAILABLE"}, RELOAD_TIMEOUT)
        assert predict(server, "hpt/versions/1").json() == {"predictions": [2.5]}
        assert predict(server, "hpt/labels/stable").json() == {
            "error": "Unrecognized servable version label: stable"}

        labelled = specific + " version_labels { key: 'stable' value: 1 }"
        write_config(config, kept, ENTRY.format(name="hpt", path=base, extra=labelled))
        wait_for(lambda: predict(server, "hpt/labels/stable").status_code == 200, RELOAD_TIMEOUT)
        assert predict(server, "hpt/labels/stable").json() == {"predictions": [2.5]}

        config.write_text("model_config_list { config { name: 'hpt' nonsense: 1 } }")
        wait_for(lambda: "Failed to reload model config" in server.log(), RELOAD_TIMEOUT)
        assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in server.log()
        assert predict(server, "hpt/labels/stable").json() == {"predictions": [2.5]}  # still in force

        write_config(config, kept)
        wait_for(lambda: status_of(server, "hpt") == {"2": "END", "1": "END"}, RELOAD_TIMEOUT)
        assert predict(server, "hpt").json() == {"error": "Servable not found for request: Latest(hpt)"}
        assert predict(server, "kept").json() == {"predictions": [2.5]}  # untouched throughout
        assert status_of(server, "kept") == {"1": "AVAILABLE"}
    finally:
        server.stop()



UNAVAILABLE = ("Request to assign label to version 2 of model hpt, which is not currently available "
               "for inference")


def test_a_reload_labelling_a_version_that_is_not_available_is_refused(models: Models,
                                                                       tmp_path: Path) -> None:
    """TF Serving's rule (issue 24): over a models.config reload and gRPC's
    HandleReloadConfigRequest alike, the label is refused with TF Serving's error and not applied."""
    import grpc
    from tensorflow_serving.apis import model_management_pb2

    from tests.server.grpc_harness import start_grpc_server

    base = tmp_path / "hpt"
    install_version(models.half_plus_two, base, "1")
    config = tmp_path / "models.config"
    write_config(config, ENTRY.format(name="hpt", path=base, extra=""))
    running = start_grpc_server([f"--model_config_file={config}",
                                 "--model_config_file_poll_wait_seconds=0.5"], tmp_path / "server.log")
    server = running.server
    canary = "version_labels { key: 'canary' value: 2 }"
    try:
        write_config(config, ENTRY.format(name="hpt", path=base, extra=canary))
        wait_for(lambda: UNAVAILABLE in server.log(), RELOAD_TIMEOUT)
        assert predict(server, "hpt/labels/canary").json() == {
            "error": "Unrecognized servable version label: canary"}
        assert predict(server, "hpt").json() == {"predictions": [2.5]}
        request = model_management_pb2.ReloadConfigRequest()
        entry = request.config.model_config_list.config.add(name="hpt", base_path=str(base),
                                                             model_platform="tensorflow")
        entry.version_labels["canary"] = 2
        try:
            running.model_service.HandleReloadConfigRequest(request, timeout=60)
            raise AssertionError("the reload was accepted")
        except grpc.RpcError as error:
            assert (error.code(), error.details()) == (grpc.StatusCode.FAILED_PRECONDITION, UNAVAILABLE)
        install_version(models.half_plus_three, base, "2")  # once version 2 is AVAILABLE, it applies
        wait_for(lambda: predict(server, "hpt/labels/canary").status_code == 200, RELOAD_TIMEOUT)
        assert predict(server, "hpt/labels/canary").json() == {"predictions": [3.5]}
    finally:
        running.stop()
