"""TensorFlow Serving's `test_profiler_service_with_valid_trace_request`, ported as written: a trace
asked of the running server's gRPC port with TensorFlow's own profiler client
(`profiler_client.trace`) writes a profile (`*.xplane.pb`) into the log directory, which is what
TensorBoard's "Capture profile" does. The server serves `tensorflow.ProfilerService` on its gRPC
port (`--enable_profiler`, on by default), as TF Serving does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.upstream.conftest import ModelFolder, UpstreamServers

pytestmark = pytest.mark.slow


def test_profiler_service_with_valid_trace_request(servers: UpstreamServers, testdata: ModelFolder,
                                                   tmp_path: Path) -> None:
    from tensorflow.python.profiler import profiler_client

    _, grpc_addr, _ = servers.run("default", testdata.root / "saved_model_half_plus_two_cpu")
    logdir = tmp_path / "logs"
    logdir.mkdir()
    # upstream: duration 1000 ms, no worker list, 10 tracing attempts
    profiler_client.trace(grpc_addr, str(logdir), 1000, "", 10)
    assert list(logdir.rglob("*.xplane.pb")), f"no profile under {logdir}: {list(logdir.rglob('*'))}"
