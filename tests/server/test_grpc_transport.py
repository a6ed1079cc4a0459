"""The gRPC transport flags on real servers: Unix socket, `--port=0`, channel arguments, 2 GiB message
limits, tensor_content answers, TLS with client verification, and a busy port (the server exits,
as upstream)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.server.grpc_harness import RPC_TIMEOUT, predict_request, rpc_error
from tests.server.harness import REPO, START_TIMEOUT, Models, Server, free_port, install_version, start_server


@pytest.fixture(scope="module")
def base_path(models: Models, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grpc_transport")
    install_version(models.half_plus_two, root / "hpt", "1")
    return root / "hpt"


def _serve(args: list[str], log: Path, base_path: Path) -> Server:
    return start_server(["--model_name=hpt", f"--model_base_path={base_path}", *args], log)


@pytest.fixture(scope="module")
def unix_only(base_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    folder = tmp_path_factory.mktemp("uds")
    socket_path = folder / "tf-serving.sock"
    server = _serve(["--port=0", f"--grpc_socket_path={socket_path}",
                     "--grpc_channel_arguments=grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb",
                     "--enable_serialization_as_tensor_content", "--enable_batching=false"],
                    folder / "server.log", base_path)
    yield server, f"unix:{socket_path}"
    server.stop()


def test_unix_socket_serves_and_port_zero_opens_no_tcp_port(unix_only: tuple[Server, str]) -> None:
    """Also the one gRPC server here with batching off: each Predict is its own model call."""
    server, target = unix_only
    assert "Batching disabled" in server.log()
    assert "Running gRPC ModelServer at unix:" in server.log()
    assert "Running gRPC ModelServer at 127.0.0.1" not in server.log()
    with grpc.insecure_channel(target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request("hpt", [2.0, 4.0]), RPC_TIMEOUT)
    assert response.model_spec.version.value == 1
    # --enable_serialization_as_tensor_content: the answer is raw bytes, not float_val
    assert not response.outputs["y"].float_val
    assert np.frombuffer(response.outputs["y"].tensor_content, "<f4").tolist() == [3.0, 4.0]


def test_messages_larger_than_grpcs_4_mib_default_are_accepted(unix_only: tuple[Server, str]) -> None:
    _, target = unix_only
    options = [("grpc.max_send_message_length", 2**31 - 1), ("grpc.max_receive_message_length", 2**31 - 1)]
    values = [2.0] * (2 * 1024 * 1024)  # 8 MiB of float_val each way
    with grpc.insecure_channel(target, options=options) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(predict_request("hpt", values), RPC_TIMEOUT)
    assert len(response.outputs["y"].tensor_content) == 4 * len(values)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _certificates(folder: Path) -> None:
    """ca.pem/ca.key; server.pem/server.key for 127.0.0.1; client.pem/client.key; all signed by the CA."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", cwd=folder)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem", cwd=folder)


def _pb_text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def test_tls_with_client_verification(base_path: Path, tmp_path: Path) -> None:
    _certificates(tmp_path)
    read = {name: (tmp_path / name).read_text() for name in ("server.key", "server.pem", "ca.pem")}
    (tmp_path / "ssl.config").write_text(
        f"server_key: {_pb_text(read['server.key'])}\nserver_cert: {_pb_text(read['server.pem'])}\n"
        f"custom_ca: {_pb_text(read['ca.pem'])}\nclient_verify: true\n")
    port = free_port()
    server = _serve([f"--port={port}", f"--ssl_config_file={tmp_path / 'ssl.config'}"],
                    tmp_path / "server.log", base_path)
    try:
        ca = (tmp_path / "ca.pem").read_bytes()
        with_cert = grpc.ssl_channel_credentials(ca, (tmp_path / "client.key").read_bytes(),
                                                 (tmp_path / "client.pem").read_bytes())
        with grpc.secure_channel(f"127.0.0.1:{port}", with_cert) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(predict_request("hpt", [2.0]), RPC_TIMEOUT)
            assert list(response.outputs["y"].float_val) == [3.0]
        refused = grpc.StatusCode.UNAVAILABLE
        with grpc.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(ca)) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)  # no client certificate
            assert rpc_error(stub.Predict, predict_request("hpt", [2.0])).code() == refused
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)  # no TLS
            assert rpc_error(stub.Predict, predict_request("hpt", [2.0])).code() == refused
    finally:
        server.stop()


def _exit_of(args: list[str], base_path: Path, tmp_path: Path) -> tuple[int, str]:
    """Run the server to completion with `args`; its exit code and log."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "pipeline.serving", f"--rest_api_port={free_port()}",
                           "--model_name=hpt", f"--model_base_path={base_path}", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=START_TIMEOUT)
    return done.returncode, done.stdout + done.stderr


def test_an_unusable_ssl_config_ends_the_server_and_says_why(base_path: Path, tmp_path: Path) -> None:
    """Never plaintext instead of TLS: as tensorflow_model_server, the process exits 1 with the reason."""
    (tmp_path / "ssl.config").write_text("server_key: 'no cert'\n")
    code, log = _exit_of([f"--port={free_port()}", f"--ssl_config_file={tmp_path / 'ssl.config'}"],
                         base_path, tmp_path)
    assert code == 1, log[-2000:]
    assert "Failed to BuildAndStart gRPC server" in log and "needs server_key and server_cert" in log


def test_a_busy_grpc_port_ends_the_server_as_upstream(base_path: Path, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        code, log = _exit_of([f"--port={holder.getsockname()[1]}"], base_path, tmp_path)
    assert code == 1, log[-2000:]
    assert "Failed to BuildAndStart gRPC server" in log
