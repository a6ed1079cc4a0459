"""REST and gRPC clients side by side while versions are exported, rolled back and deleted under a
server polling every 0.2 s (batching on, the default): zero errors on either API, every answer from
one export (a model `x1 + bias` names its export), and over gRPC the version the answer names is the
version that export was given. Both APIs see the same versions: traffic moves on both.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import requests
from tensorflow_serving.apis import prediction_service_pb2_grpc

from pipeline.store import versions as registry
from tests.reliability.conftest import export_linear, wait_states
from tests.server.grpc_harness import RPC_TIMEOUT, predict_request, start_grpc_server

POLL = 0.2
THREADS_PER_API = 4
MIN_PER_API = 600
CONFIG = """
model_config_list {{
  config {{
    name: 'linear_model' base_path: '{base}' model_platform: 'tensorflow'
      model_version_policy {{ latest {{ num_versions: 2 }} }}
  }}
}}
"""


class SideBySide:
    """Threads predicting `linear_model` over REST and over gRPC until stopped; answers recorded."""

    def __init__(self, rest_url: str, grpc_target: str) -> None:
        self.rest_url = rest_url
        self.grpc_target = grpc_target
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.answers: dict[str, list[tuple[int, int | None]]] = {"rest": [], "grpc": []}  # (bias, version)
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._rest, args=(i,)) for i in range(THREADS_PER_API)]
        self.threads += [threading.Thread(target=self._grpc, args=(i,)) for i in range(THREADS_PER_API)]

    def start(self) -> SideBySide:
        for thread in self.threads:
            thread.start()
        return self

    def count(self, api: str) -> int:
        with self.lock:
            return len(self.answers[api])

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def _record(self, api: str, x1: float, y: float, version: int | None) -> None:
        with self.lock:
            self.answers[api].append((round(y - x1), version))

    def _fail(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def _rest(self, seed: int) -> None:
        session = requests.Session()
        n = 0
        while not self.stop.is_set():
            x1 = float(seed * 1000 + n % 1000)
            n += 1
            try:
                response = session.post(f"{self.rest_url}/v1/models/linear_model:predict",
                                        json={"instances": [[x1, 5.0]]}, timeout=30)
            except requests.RequestException as error:
                self._fail(f"REST {error}")
                continue
            if response.status_code != 200:
                self._fail(f"REST {response.status_code} {response.text[:200]}")
                continue
            self._record("rest", x1, response.json()["predictions"][0][0], None)

    def _grpc(self, seed: int) -> None:
        with grpc.insecure_channel(self.grpc_target) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            n = 0
            while not self.stop.is_set():
                x1 = float(seed * 1000 + n % 1000)
                n += 1
                request = predict_request("linear_model", [x1, 5.0], key="inputs", shape=[1, 2])
                try:
                    response = stub.Predict(request, RPC_TIMEOUT)
                except grpc.RpcError as error:
                    self._fail(f"gRPC {error.code()} {error.details()}")
                    continue
                (output,) = response.outputs.values()
                self._record("grpc", x1, output.float_val[0], response.model_spec.version.value)


def test_rest_and_grpc_clients_see_no_error_under_version_churn(tmp_path: Path) -> None:
    base = tmp_path / "linear_model"
    assert export_linear(base, 1.0) == 1
    config = tmp_path / "models.config"
    config.write_text(CONFIG.format(base=base))
    server = start_grpc_server([f"--model_config_file={config}", f"--file_system_poll_wait_seconds={POLL}"],
                               tmp_path / "server.log")
    try:
        wait_states(server.server, {1: "AVAILABLE"})
        load = SideBySide(server.server.url, server.target).start()
        history: list[tuple[int, int]] = []  # (version, bias) in export order: numbers come back
        try:
            for bias in (2, 3, 4):
                version = export_linear(base, float(bias))
                history.append((version, bias))
                wait_states(server.server, {version: "AVAILABLE"})
            registry.delete_version(base, history[-1][0])  # rollback: the newest goes
            wait_states(server.server, {history[-1][0]: "END"})
            version = export_linear(base, 5.0)
            history.append((version, 5))
            wait_states(server.server, {version: "AVAILABLE"})
            deadline = time.monotonic() + 120
            while min(load.count("rest"), load.count("grpc")) < MIN_PER_API and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            load.finish()
        assert server.server.process.poll() is None
    finally:
        server.stop()
    print(f"\nside by side: {load.count('rest')} REST + {load.count('grpc')} gRPC answers, "
          f"{len(load.errors)} errors")
    assert load.errors == []
    assert min(load.count("rest"), load.count("grpc")) >= MIN_PER_API
    biases = {1, 2, 3, 4, 5}
    for api in ("rest", "grpc"):
        assert {bias for bias, _ in load.answers[api]} <= biases
        assert len({bias for bias, _ in load.answers[api]}) >= 3, f"{api} traffic never moved"
    pairs = {(version, bias) for bias, version in load.answers["grpc"]}
    known = {(1, 1), *history}
    assert pairs <= known, f"gRPC answers named the wrong version: {pairs - known}"
