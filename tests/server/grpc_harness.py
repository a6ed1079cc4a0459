"""Helpers for the gRPC tests: a real `python -m pipeline.serving` with `--port` on a free loopback
port, talked to with the official stubs of `tensorflow-serving-api` (as upstream's tests do).

The server opens gRPC before REST, so once `start_server` sees the REST port answer, gRPC is bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc

from tests.server.harness import Server, free_port, start_server

RPC_TIMEOUT = 30.0  # generous: a busy 2-core machine; upstream uses 5 s


@dataclass
class GrpcServer:
    """A running server with its gRPC target and one channel to it."""

    server: Server
    grpc_port: int
    channel: grpc.Channel

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def prediction(self) -> prediction_service_pb2_grpc.PredictionServiceStub:
        return prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    @property
    def model_service(self) -> model_service_pb2_grpc.ModelServiceStub:
        return model_service_pb2_grpc.ModelServiceStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        self.server.stop()


def start_grpc_server(args: list[str], log_path: Path, batching: str | None = None) -> GrpcServer:
    """Start the server with `args` plus `--port=<free port>`; return once both APIs answer."""
    port = free_port()
    server = start_server([f"--port={port}", *args], log_path, batching=batching)
    return GrpcServer(server, port, grpc.insecure_channel(f"127.0.0.1:{port}"))


def predict_request(model: str, values: list[float], *, key: str = "x", shape: list[int] | None = None,
                    version: int | None = None, label: str | None = None, signature: str = "",
                    output_filter: tuple[str, ...] = ()) -> predict_pb2.PredictRequest:
    """A float Predict request as upstream's tests build it (`float_val`, shape [len(values)])."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if signature:
        request.model_spec.signature_name = signature
    if label is not None:
        request.model_spec.version_label = label
    elif version is not None:
        request.model_spec.version.value = version
    tensor = request.inputs[key]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.float_val.extend(values)
    for size in shape if shape is not None else [len(values)]:
        tensor.tensor_shape.dim.add().size = size
    request.output_filter.extend(output_filter)
    return request


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    """The RpcError `call(*args, **kwargs)` raises (fails the test if it succeeds)."""
    try:
        call(*args, timeout=kwargs.pop("timeout", RPC_TIMEOUT), **kwargs)
    except grpc.RpcError as error:
        return error
    raise AssertionError(f"{call} succeeded, an RpcError was expected")
