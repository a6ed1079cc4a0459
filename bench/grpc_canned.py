"""The gRPC floor: a grpcio (asyncio) server whose Predict returns one fixed PredictResponse.

Same grpcio, same protos and the same server flavour as `pipeline.serving.grpc`, but no parsing of
inputs, no model and no batching: what answering a unary Predict costs in Python before any serving
work. Usage::

    python bench/grpc_canned.py --port P
"""

from __future__ import annotations

import argparse
import asyncio
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def canned_response():
    """The answer our server gives for the bench's 1-row request: output_0 = [[3.0]], version 1."""
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    response = predict_pb2.PredictResponse()
    response.model_spec.name = "linear_model"
    response.model_spec.version.value = 1
    response.model_spec.signature_name = "serving_default"
    output = response.outputs["output_0"]
    output.dtype = types_pb2.DT_FLOAT
    output.tensor_shape.dim.add().size = 1
    output.tensor_shape.dim.add().size = 1
    output.float_val.append(3.0)
    return response


async def serve(port: int) -> None:
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    answer = canned_response()

    class Canned(prediction_service_pb2_grpc.PredictionServiceServicer):
        async def Predict(self, request, context):  # noqa: N802 - the gRPC method name
            return answer

    server = grpc.aio.server(options=[("grpc.max_receive_message_length", 2**31 - 1)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Canned(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
