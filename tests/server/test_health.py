"""Health means loaded (issue 23 item 2): gRPC health says NOT_SERVING until every configured model
has a version AVAILABLE, as TF Serving (which starts its servers only then) implies; a Kubernetes
probe on it never marks a pod ready that can only answer 404.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.server.grpc_harness import GrpcServer, start_grpc_server
from tests.server.harness import Models, install_version, ok_json, wait_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
NAMES = ("", "tensorflow.serving.PredictionService", "PredictionService", "tensorflow.serving.ModelService")
CONFIG = """
model_config_list {{
  config {{ name: 'ready' base_path: '{root}/ready' model_platform: 'tensorflow' }}
  config {{ name: 'later' base_path: '{root}/later' model_platform: 'tensorflow' }}
}}
"""


@pytest.fixture(scope="module")
def half_loaded(models: Models,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GrpcServer, Path]]:
    """Two models: `ready` has a version at start-up, `later` has none yet."""
    root = tmp_path_factory.mktemp("health")
    install_version(models.half_plus_two, root / "ready", "1")
    (root / "later").mkdir()
    (root / "models.config").write_text(CONFIG.format(root=root))
    server = start_grpc_server([f"--model_config_file={root / 'models.config'}",
                                "--enable_grpc_healthcheck_service", "--file_system_poll_wait_seconds=0.2"],
                               root / "server.log")
    yield server, root
    server.stop()


def status(server: GrpcServer, name: str) -> int:
    stub = health_pb2_grpc.HealthStub(server.channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=30).status


def test_health_is_not_serving_until_every_model_has_a_version_then_serving(
        half_loaded: tuple[GrpcServer, Path], models: Models) -> None:
    server, root = half_loaded
    assert ok_json(server.server.post("/v1/models/ready:predict", {"instances": [1.0]})) == {
        "predictions": [2.5]}
    assert [status(server, name) for name in NAMES] == [NOT_SERVING] * len(NAMES)
    install_version(models.half_plus_two, root / "later", "1")
    wait_for(lambda: status(server, "") == SERVING, 120)
    assert [status(server, name) for name in NAMES] == [SERVING] * len(NAMES)
    assert "gRPC health says SERVING" in server.server.log()
