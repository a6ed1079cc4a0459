"""TensorFlow Serving's `predict_impl_test.cc` cases, ported: Predict's order of checks and status
codes on upstream's half_plus_two (`saved_model_half_plus_two_cpu`, version 123), asked over gRPC
of a server started with upstream's command line (conftest.py). Upstream asserts the status codes;
so do these (the model is called `default` here, as upstream's Python tests call it).

Ported: MissingOrEmptyModelSpec (no ModelSpec; a model that is not served), EmptyInputList,
InputTensorsDontMatchModelSpecInputs, OutputFiltersDontMatchModelSpecOutputs (unknown and
duplicated filters), InputTensorsHaveWrongType, PredictionSuccess, PredictionWithCustomizedSignatures
(a named signature that does not exist).
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tests.upstream.conftest import ModelFolder, UpstreamServers

pytestmark = pytest.mark.slow

RPC_TIMEOUT = 30.0
MODEL = "default"
VERSION = 123


@pytest.fixture
def stub(servers: UpstreamServers, testdata: ModelFolder
         ) -> prediction_service_pb2_grpc.PredictionServiceStub:
    address = servers.run(MODEL, Path(testdata.root) / "saved_model_half_plus_two_cpu")[1]
    return prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))


def status_of(stub, request: predict_pb2.PredictRequest) -> grpc.StatusCode:
    try:
        stub.Predict(request, RPC_TIMEOUT)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def request_for(model: str = MODEL, version: int | None = VERSION) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest()
    request.model_spec.SetInParent()  # present even with an empty name
    request.model_spec.name = model
    if version is not None:
        request.model_spec.version.value = version
    return request


def add_x(request: predict_pb2.PredictRequest, key: str = "x") -> None:
    """Upstream's input: a float tensor of shape [1] holding 2.0."""
    tensor = request.inputs[key]
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.float_val.append(2.0)
    tensor.tensor_shape.dim.add().size = 1


def test_missing_or_empty_model_spec(stub) -> None:
    assert status_of(stub, predict_pb2.PredictRequest()) == grpc.StatusCode.INVALID_ARGUMENT  # no ModelSpec
    assert status_of(stub, request_for("", None)) == grpc.StatusCode.INVALID_ARGUMENT  # no model name
    assert status_of(stub, request_for("test", None)) == grpc.StatusCode.NOT_FOUND


def test_empty_input_list(stub) -> None:
    assert status_of(stub, request_for()) == grpc.StatusCode.INVALID_ARGUMENT


def test_input_tensors_dont_match_model_spec_inputs(stub) -> None:
    request = request_for()
    tensor = request.inputs["key"]
    tensor.dtype = types_pb2.DT_STRING
    tensor.string_val.append(b"any_key")
    tensor.tensor_shape.dim.add().size = 1
    assert status_of(stub, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_output_filters_dont_match_model_spec_outputs(stub) -> None:
    request = request_for()
    add_x(request)
    request.output_filter.append("output_filter")
    assert status_of(stub, request) == grpc.StatusCode.INVALID_ARGUMENT  # not an output

    request.ClearField("output_filter")
    request.output_filter.extend(["y", "y"])
    assert status_of(stub, request) == grpc.StatusCode.INVALID_ARGUMENT  # duplicated


def test_input_tensors_have_wrong_type(stub) -> None:
    request = request_for()
    tensor = request.inputs["x"]
    tensor.dtype = types_pb2.DT_STRING
    tensor.string_val.append(b"any_key")
    tensor.tensor_shape.dim.add().size = 1
    request.output_filter.append("y")
    assert status_of(stub, request) == grpc.StatusCode.INVALID_ARGUMENT


def test_prediction_success(stub) -> None:
    request = request_for()
    add_x(request)
    response = stub.Predict(request, RPC_TIMEOUT)
    assert list(response.outputs["y"].float_val) == [3.0]  # 0.5 * 2 + 2
    assert response.outputs["y"].dtype == types_pb2.DT_FLOAT
    assert list(response.outputs["y"].tensor_shape.dim) == list(request.inputs["x"].tensor_shape.dim)
    assert (response.model_spec.name, response.model_spec.version.value,
            response.model_spec.signature_name) == (MODEL, VERSION, "serving_default")


def test_prediction_with_a_signature_that_does_not_exist(stub) -> None:
    request = request_for()
    request.model_spec.signature_name = "no_such_signature"
    add_x(request)
    assert status_of(stub, request) == grpc.StatusCode.INVALID_ARGUMENT
