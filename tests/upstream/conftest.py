"""Run our server the way TensorFlow Serving's own tests run `tensorflow_model_server`.

`UpstreamServers.run` builds upstream's command line verbatim (tensorflow_model_server_test_base.py's
`RunServer`: `--port --rest_api_port --rest_api_timeout_in_ms=5000 --grpc_socket_path`, then
`--model_config_file` or `--model_name --model_base_path`, `--prefer_tflite_model=true` for TF
Lite, `--monitoring_config_file`, `--model_config_file_poll_wait_seconds`, `--enable_batching
--batching_parameters_file`, `--grpc_channel_arguments`), but starts `python -m pipeline.serving`.
Like upstream, one server is started per distinct set of arguments and shared by the tests asking
for it; all stop at the end of the session.

The model folder (`testdata`) is upstream's own when `TFSERVING_TESTDATA` names it (`make
conformance`), else the project's copies built into a temporary folder
(tests/support/upstream_models.py), so a clone runs these tests with nothing else.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.support import upstream_models as um
from tests.support.net import free_port, stop_process, wait_for

REPO = Path(__file__).resolve().parents[2]
HTTP_REST_TIMEOUT_MS = 5000
START_TIMEOUT = 120.0

GOOD_MODEL_CONFIG = """model_config_list: {
  config: {
    name: "half_plus_two",
    base_path: "${TEST_HALF_PLUS_TWO_DIR}",
    model_platform: "tensorflow"
  },
  config: {
    name: "half_plus_three",
    base_path: "${TEST_HALF_PLUS_THREE_DIR}",
    model_platform: "tensorflow"
  }
}
"""
MONITORING_CONFIG = 'prometheus_config: {\n  enable: true,\n  path: "/monitoring/prometheus/metrics"\n}\n'
BATCHING_CONFIG = ("max_batch_size { value: 128 }\nbatch_timeout_micros { value: 0 }\n"
                   "max_enqueued_batches { value: 1000000 }\nnum_batch_threads { value: 8 }\n")
BAD_MODEL_CONFIG = "improperly formatted file\n"


@dataclass
class ModelFolder:
    """Where upstream's test models are, and whether they are upstream's own files."""

    root: Path
    upstream: bool
    scratch: Path

    def file(self, name: str, fallback: str) -> Path:
        """Upstream's config file `name`, or (project models) `fallback` written to a scratch file."""
        if self.upstream:
            return self.root / name
        path = self.scratch / name
        path.write_text(fallback)
        return path


@dataclass
class UpstreamServers:
    """Servers started with upstream's command lines, one per distinct argument set."""

    scratch: Path
    started: dict[tuple, tuple[subprocess.Popen, str, str, Path]] = field(default_factory=dict)

    def run(self, model_name: str | None, model_path: Path | str | None, model_type: str = "tf",
            model_config_file: Path | None = None, monitoring_config_file: Path | None = None,
            batching_parameters_file: Path | None = None, grpc_channel_arguments: str = "",
            model_config_file_poll_period: int | None = None, wait_for_server_ready: bool = True
            ) -> tuple[subprocess.Popen, str, str]:
        """(process, grpc host:port, rest host:port), as upstream's RunServer returns them; with
        `wait_for_server_ready` once the REST port answers."""
        key = (model_name, str(model_path), model_type, str(model_config_file), str(monitoring_config_file),
               str(batching_parameters_file), grpc_channel_arguments, model_config_file_poll_period)
        if key in self.started:
            process, grpc, rest, _ = self.started[key]
            return process, grpc, rest
        port, rest_api_port = free_port(), free_port()
        socket_path = self.scratch / f"tf-serving-{len(self.started)}.sock"
        command = ["--port=" + str(port), "--rest_api_port=" + str(rest_api_port),
                   "--rest_api_timeout_in_ms=" + str(HTTP_REST_TIMEOUT_MS),
                   "--grpc_socket_path=" + str(socket_path)]
        if model_config_file:
            command.append("--model_config_file=" + str(model_config_file))
        elif model_path:
            command += ["--model_name=" + str(model_name), "--model_base_path=" + str(model_path)]
        else:
            raise ValueError("Both model_config_file and model_path cannot be empty!")
        if model_type == "tflite":
            command.append("--prefer_tflite_model=true")
        if monitoring_config_file:
            command.append("--monitoring_config_file=" + str(monitoring_config_file))
        if model_config_file_poll_period is not None:
            command.append("--model_config_file_poll_wait_seconds=" + str(model_config_file_poll_period))
        if batching_parameters_file:
            command += ["--enable_batching", "--batching_parameters_file=" + str(batching_parameters_file)]
        if grpc_channel_arguments:
            command.append("--grpc_channel_arguments=" + grpc_channel_arguments)
        log_path = self.scratch / f"server-{len(self.started)}.log"
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
        with log_path.open("wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "pipeline.serving", *command], cwd=REPO,
                                       env=env, stdout=log, stderr=subprocess.STDOUT)
        rest = f"127.0.0.1:{rest_api_port}"
        self.started[key] = (process, f"127.0.0.1:{port}", rest, log_path)
        if not wait_for_server_ready:
            return process, f"127.0.0.1:{port}", rest

        def rest_port_answers() -> bool:
            if process.poll() is not None:
                del self.started[key]  # a later test with these arguments starts its own
                pytest.fail(f"server exited with {process.returncode}:\n"
                            f"{log_path.read_text(errors='replace')[-3000:]}")
            try:
                requests.get(f"http://{rest}/", timeout=5)
                return True
            except requests.RequestException:  # not listening yet, or too busy loading to answer
                return False

        wait_for(rest_port_answers, START_TIMEOUT, interval=0.1)
        return process, f"127.0.0.1:{port}", rest

    def output(self, process: subprocess.Popen) -> str:
        """Everything a started server printed so far (stdout and stderr)."""
        path = next(path for started, _, _, path in self.started.values() if started is process)
        return path.read_text(errors="replace")

    def stop_all(self) -> None:
        for process, _, _, _ in self.started.values():
            stop_process(process)


@pytest.fixture(scope="session")
def testdata(tmp_path_factory: pytest.TempPathFactory) -> ModelFolder:
    scratch = tmp_path_factory.mktemp("upstream_scratch")
    root = um.testdata_root()
    if root is not None:
        if not root.is_dir():
            pytest.skip(f"{um.TESTDATA_ENV}={root} is not a folder: TensorFlow Serving's testdata is absent")
        return ModelFolder(root, upstream=True, scratch=scratch)
    built = um.build_all(tmp_path_factory.mktemp("upstream_models"))
    return ModelFolder(built, upstream=False, scratch=scratch)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpstreamServers]:
    servers = UpstreamServers(tmp_path_factory.mktemp("upstream_servers"))
    yield servers
    servers.stop_all()
