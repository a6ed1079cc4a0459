"""Hostile input over gRPC: random bytes as request protos, random TensorProtos (wrong dtypes,
`tensor_content` that does not match the shape, huge declared shapes), unknown models, versions and
labels. Every answer is INVALID_ARGUMENT, NOT_FOUND or UNIMPLEMENTED (never INTERNAL or UNKNOWN, never
a dropped connection), and afterwards the server still predicts, its memory has not run away and its
log shows no internal error. Each generator counts its own answers and ends with that check
(`after_the_storm`), so the tests pass in any order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorflow.core.framework import tensor_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2

from tests.reliability.conftest import MODEL, Templates
from tests.reliability.probes import rss_bytes
from tests.server.grpc_harness import RPC_TIMEOUT, GrpcServer, predict_request, rpc_error, start_grpc_server
from tests.server.harness import install_version

EXPECTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED}
RSS_GROWTH_LIMIT = 200 * 1024 * 1024
SETTINGS = dict(deadline=None, database=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GrpcServer]:
    root = tmp_path_factory.mktemp("grpc_hostile")
    install_version(templates.linear, root / MODEL, "1")
    install_version(templates.identity, root / "identity", "1")
    config = root / "models.config"
    config.write_text(f"""model_config_list {{
      config {{ name: '{MODEL}' base_path: '{root / MODEL}' model_platform: 'tensorflow'
        version_labels {{ key: 'stable' value: 1 }} }}
      config {{ name: 'identity' base_path: '{root / "identity"}' model_platform: 'tensorflow' }}
    }}""")
    running = start_grpc_server([f"--model_config_file={config}", "--file_system_poll_wait_seconds=0"],
                                root / "server.log")
    running.rss_at_start = rss_bytes(running.server.process.pid)  # type: ignore[attr-defined]
    yield running
    running.stop()


def _raw_predict(server: GrpcServer):
    return server.channel.unary_unary("/tensorflow.serving.PredictionService/Predict",
                                      request_serializer=None, response_deserializer=None)


def after_the_storm(server: GrpcServer, codes: Counter, examples: int) -> None:
    """The end of every generator test: it ran (at least half of its examples), every answer was an
    expected code, the server still predicts, its memory grew less than RSS_GROWTH_LIMIT since it
    started, and its log shows no internal error."""
    assert examples >= SETTINGS["max_examples"] // 2, f"only {examples} examples ran"
    assert set(codes) <= EXPECTED | {grpc.StatusCode.OK}, codes
    response = server.prediction.Predict(predict_request(MODEL, [1.0, 2.0], key="inputs", shape=[1, 2]),
                                         RPC_TIMEOUT)
    assert list(next(iter(response.outputs.values())).float_val) == [3.0]
    assert server.server.process.poll() is None
    grown = rss_bytes(server.server.process.pid) - server.rss_at_start  # type: ignore[attr-defined]
    assert grown < RSS_GROWTH_LIMIT, f"RSS grew by {grown / 2**20:.0f} MiB"
    log = Path(server.server.log_path).read_text(errors="replace")
    assert "Internal error serving gRPC" not in log and "Traceback" not in log, log[-3000:]


def test_random_bytes_are_invalid_argument(server: GrpcServer) -> None:
    codes: Counter = Counter()
    examples = 0

    @given(st.binary(min_size=1, max_size=300))
    @settings(**SETTINGS)
    def one(raw: bytes) -> None:
        nonlocal examples
        examples += 1
        try:
            predict_pb2.PredictRequest.FromString(raw)
        except Exception:  # noqa: BLE001 - only bytes that are not a PredictRequest are the point here
            code = rpc_error(_raw_predict(server), raw).code()
            codes[code] += 1
            assert code == grpc.StatusCode.INVALID_ARGUMENT

    one()
    after_the_storm(server, codes, examples)


def test_bytes_that_are_not_a_proto_are_named_in_the_message(server: GrpcServer) -> None:
    error = rpc_error(_raw_predict(server), b"\xff\xff\xff\xff")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("Could not parse the PredictRequest")


DTYPES = [types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_INT64,
          types_pb2.DT_STRING, types_pb2.DT_BOOL, types_pb2.DT_HALF, types_pb2.DT_COMPLEX64,
          types_pb2.DT_INVALID, types_pb2.DT_RESOURCE, types_pb2.DT_VARIANT, types_pb2.DT_QINT8,
          types_pb2.DT_BFLOAT16, 77]


@st.composite
def tensors(draw: st.DrawFn) -> tensor_pb2.TensorProto:
    proto = tensor_pb2.TensorProto(dtype=draw(st.sampled_from(DTYPES)))
    for size in draw(st.lists(st.one_of(st.integers(-3, 4), st.integers(2**20, 2**40)), max_size=4)):
        proto.tensor_shape.dim.add().size = size
    proto.tensor_shape.unknown_rank = draw(st.booleans()) and draw(st.booleans())
    kind = draw(st.sampled_from(["float", "int", "string", "content", "none"]))
    if kind == "float":
        proto.float_val.extend(draw(st.lists(st.floats(width=32), max_size=6)))
    elif kind == "int":
        proto.int_val.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6)))
    elif kind == "string":
        proto.string_val.extend(draw(st.lists(st.binary(max_size=5), max_size=4)))
    elif kind == "content":
        proto.tensor_content = draw(st.binary(max_size=40))
    return proto


def test_random_tensors_never_break_the_server(server: GrpcServer) -> None:
    codes: Counter = Counter()

    @given(tensors(), st.sampled_from(["inputs", "x", ""]), st.sampled_from([MODEL, "identity", "unknown"]),
           st.sampled_from(["", "serving_default", "float", "string", "multi", "nope"]))
    @settings(**SETTINGS)
    def one(tensor: tensor_pb2.TensorProto, key: str, model: str, signature: str) -> None:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature
        request.inputs[key].CopyFrom(tensor)
        try:
            server.prediction.Predict(request, RPC_TIMEOUT)
            codes[grpc.StatusCode.OK] += 1
        except grpc.RpcError as error:
            codes[error.code()] += 1
            assert error.code() in EXPECTED, (error.code(), error.details())

    one()
    after_the_storm(server, codes, sum(codes.values()))


@pytest.mark.parametrize(("tensor", "message"), [
    (dict(shape=[3, 2], content=b"\0" * 20), "tensor parsing error: inputs"),
    (dict(shape=[2**31, 2**31], values=[1.0]), "tensor parsing error: inputs"),
    (dict(shape=[10**9, 2], values=[1.0, 2.0]), "tensor parsing error: inputs"),
    (dict(shape=[0, 2**40, 2**40], values=[]), "tensor parsing error: inputs"),  # no elements, yet too big
    (dict(shape=[1, 2], dtype=types_pb2.DT_STRING), "Expects arg[0] to be float but string is provided"),
    (dict(shape=[1, 2], dtype=types_pb2.DT_INT64), "Expects arg[0] to be float but int64 is provided"),
])
def test_bad_tensors_get_tf_servings_texts(server: GrpcServer, tensor: dict, message: str) -> None:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    proto = request.inputs["inputs"]
    proto.dtype = tensor.get("dtype", types_pb2.DT_FLOAT)
    for size in tensor["shape"]:
        proto.tensor_shape.dim.add().size = size
    if "content" in tensor:
        proto.tensor_content = tensor["content"]
    elif proto.dtype == types_pb2.DT_STRING:
        proto.string_val.extend([b"a", b"b"])
    elif proto.dtype == types_pb2.DT_INT64:
        proto.int64_val.extend([1, 2])
    else:
        proto.float_val.extend(tensor["values"])
    error = rpc_error(server.prediction.Predict, request)
    assert (error.code(), error.details()) == (grpc.StatusCode.INVALID_ARGUMENT, message)


@pytest.mark.parametrize(("model", "selector", "code"), [
    ("unknown", {}, grpc.StatusCode.NOT_FOUND), (MODEL, {"version": 7}, grpc.StatusCode.NOT_FOUND),
    (MODEL, {"version": -1}, grpc.StatusCode.NOT_FOUND),
    (MODEL, {"label": "nope"}, grpc.StatusCode.INVALID_ARGUMENT),
    ("", {}, grpc.StatusCode.INVALID_ARGUMENT)])  # `ModelSpec has no name specified.`, as TF Serving
def test_unknown_models_versions_and_labels(server: GrpcServer, model: str, selector: dict,
                                            code: grpc.StatusCode) -> None:
    request = predict_request(model, [1.0, 2.0], key="inputs", shape=[1, 2], **selector)
    assert rpc_error(server.prediction.Predict, request).code() == code
