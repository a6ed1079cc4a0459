"""A small client for TensorFlow Serving's gRPC API (our server's `--port`, or a real one), built on the
official stubs of `tensorflow-serving-api`.

The gRPC twin of `pipeline.client.rest.ServingClient`, for the dashboard and scripts: every failure is
a `ClientError` whose `str()` a user can act on (its `message` starts with the gRPC status name, e.g.
`NOT_FOUND: Servable not found ...`). The messages are TF Serving's own protos, read from the
installed `tensorflow-serving-api` without importing TensorFlow (`pipeline.tf_protos`, on the first
call, never at import), and the methods are called by their full names
(`/tensorflow.serving.PredictionService/Predict`), so a page using this module stays fast and
leaves `sys.modules` alone::

    from pipeline.client.grpc import GrpcClient

    client = GrpcClient("127.0.0.1:8500")
    result = client.predict("linear_model", [[1.0, 2.0], [5.0, 7.0]])
    print(result.predictions, result.version, f"{result.latency_s * 1000:.1f} ms")
    print(client.health())   # "SERVING" (with --enable_grpc_healthcheck_service)

Thread-safe: one channel per client (grpc channels are), shared by every thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline import tf_protos
from pipeline.client import tf_examples
from pipeline.client.errors import ClientError
from pipeline.client.rest import PredictResult

DEFAULT_SIGNATURE = "serving_default"
MAX_MESSAGE_BYTES = 2**31 - 1
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
HEALTH_SERVICE = "grpc.health.v1.Health"


@dataclass(frozen=True)
class GrpcPredictResult:
    """One successful Predict: every output as nested lists, the version that answered, the latency."""

    model: str
    version: int
    signature: str
    outputs: dict[str, Any]
    latency_s: float
    """Wall-clock round trip of the call (serialize, send, server work, receive, parse)."""
    predictions: Any = field(init=False)
    """The only output's values (like REST's `predictions` for one output), else every output."""

    def __post_init__(self) -> None:
        values = next(iter(self.outputs.values())) if len(self.outputs) == 1 else self.outputs
        object.__setattr__(self, "predictions", values)


@dataclass(frozen=True)
class GrpcExamplesResult:
    """One successful Classify or Regress, its ``results`` shaped as the REST API writes them."""

    model: str
    version: int
    signature: str
    results: list[Any]
    latency_s: float


class GrpcClient:
    """Speaks PredictionService / ModelService / grpc.health.v1 at `target` ("host:port" or
    "unix:/path"); TLS with `root_certificates` (PEM bytes) when given."""

    def __init__(self, target: str, timeout: float = 5.0, root_certificates: bytes | None = None) -> None:
        self.target = target
        self.timeout = timeout
        self._root_certificates = root_certificates
        self._lock = threading.Lock()
        self._channel: Any = None
        self._methods: dict[str, Any] = {}  # "/service/method" -> the channel's callable
        self._inputs: dict[tuple, str] = {}  # (model, version, label, signature) -> input key

    def __repr__(self) -> str:
        return f"GrpcClient({self.target!r}, timeout={self.timeout})"

    @property
    def url(self) -> str:
        """How errors and the dashboard name the endpoint."""
        return self.target if self.target.startswith("unix:") else f"grpc://{self.target}"

    def close(self) -> None:
        """Close the channel; a later call opens a new one."""
        with self._lock:
            channel, self._channel = self._channel, None
            self._methods.clear()
        if channel is not None:
            channel.close()

    def _open(self) -> Any:
        import grpc

        with self._lock:
            if self._channel is None:
                options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                           ("grpc.max_send_message_length", MAX_MESSAGE_BYTES)]
                if self._root_certificates is not None:
                    credentials = grpc.ssl_channel_credentials(self._root_certificates)
                    self._channel = grpc.secure_channel(self.target, credentials, options=options)
                else:
                    self._channel = grpc.insecure_channel(self.target, options=options)
            return self._channel

    def _call(self, service: str, method: str, request: Any) -> tuple[Any, float]:
        """One unary call of `service`'s `method` (full service name); (response, seconds). Every
        failure becomes a ClientError."""
        import grpc

        call = self._method(service, method)
        started = time.perf_counter()
        try:
            response = call(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise _client_error(error, self.url, self.timeout) from None
        return response, time.perf_counter() - started

    def _method(self, service: str, method: str) -> Any:
        """The channel's callable for `/service/method`, (de)serializing with the method's own
        message classes (TF Serving's from `tf_protos`, grpc.health.v1's from grpcio-health-checking)."""
        path = f"/{service}/{method}"
        channel = self._open()
        with self._lock:
            if path in self._methods:
                return self._methods[path]
        if service == HEALTH_SERVICE:
            from grpc_health.v1 import health_pb2

            response_class: Any = health_pb2.HealthCheckResponse
        else:
            descriptor = tf_protos.service(service).methods_by_name[method]
            response_class = tf_protos.message_class(descriptor.output_type.full_name)
        call = channel.unary_unary(path, request_serializer=_serialize,
                                   response_deserializer=response_class.FromString)
        with self._lock:
            if self._channel is channel:
                self._methods[path] = call
        return call

    # -- API ---------------------------------------------------------------------------------------

    def predict(self, model: str, rows: Sequence[Sequence[float]], version: int | None = None,
                label: str | None = None, signature: str = DEFAULT_SIGNATURE,
                input_name: str | None = None) -> GrpcPredictResult:
        """Predict `rows` (a float32 [n, d] tensor) with `signature`; the input key is `input_name`
        or, if None, the signature's only input (read once from the model's metadata)."""
        import numpy as np

        key = input_name or self._input_name(model, version, label, signature)
        arrays = {key: np.asarray(rows, dtype=np.float32)}
        return self.predict_arrays(model, arrays, version, label, signature)

    def predict_arrays(self, model: str, inputs: dict[str, Any], version: int | None = None,
                       label: str | None = None, signature: str = DEFAULT_SIGNATURE) -> GrpcPredictResult:
        """Predict with one typed numpy array per input key (any dtype and shape: strings as an
        object array of bytes), as the signature takes them; every output comes back by name."""
        from pipeline.serving.grpc.tensors import fill_proto

        request = tf_protos.message_class("tensorflow.serving.PredictRequest")()
        _model_spec(request.model_spec, model, version, label, signature)
        for key, array in inputs.items():
            fill_proto(request.inputs[key], array)
        response, seconds = self._call(PREDICTION_SERVICE, "Predict", request)
        outputs = {name: _tensor_values(proto, name, self.url)
                   for name, proto in sorted(response.outputs.items())}
        return GrpcPredictResult(model=model, version=response.model_spec.version.value,
                                 signature=response.model_spec.signature_name or signature,
                                 outputs=outputs, latency_s=seconds)

    def classify(self, model: str, examples: Sequence[dict[str, Any]], *,
                 context: dict[str, Any] | None = None, version: int | None = None, label: str | None = None,
                 signature: str = DEFAULT_SIGNATURE) -> GrpcExamplesResult:
        """Classify REST-style ``examples`` (``{feature: value or [values]}``, ``context`` merged into
        each); ``results`` as REST's ``:classify`` writes them: ``[[label, score], ...]`` per example."""
        response, seconds = self._examples_call("Classify", "ClassificationRequest", model, examples,
                                                context, version, label, signature)
        results = [[[c.label, _float32(c.score)] for c in item.classes]
                   for item in response.result.classifications]
        return GrpcExamplesResult(model, response.model_spec.version.value,
                                  response.model_spec.signature_name or signature, results, seconds)

    def regress(self, model: str, examples: Sequence[dict[str, Any]], *,
                context: dict[str, Any] | None = None, version: int | None = None, label: str | None = None,
                signature: str = DEFAULT_SIGNATURE) -> GrpcExamplesResult:
        """Regress REST-style ``examples``; ``results`` as REST's ``:regress``: one value per example."""
        response, seconds = self._examples_call("Regress", "RegressionRequest", model, examples,
                                                context, version, label, signature)
        results = [_float32(item.value) for item in response.result.regressions]
        return GrpcExamplesResult(model, response.model_spec.version.value,
                                  response.model_spec.signature_name or signature, results, seconds)

    def _examples_call(self, method: str, message: str, model: str, examples: Sequence[dict[str, Any]],
                       context: dict[str, Any] | None, version: int | None, label: str | None,
                       signature: str) -> tuple[Any, float]:
        request = tf_protos.message_class(f"tensorflow.serving.{message}")()
        _model_spec(request.model_spec, model, version, label, signature)
        try:
            tf_examples.fill_example_list(request.input, list(examples), context)
        except ValueError as error:
            raise ClientError(f"The examples cannot be sent: {error}", url=self.url) from None
        return self.call(method, request)

    def call(self, method: str, request: Any) -> tuple[Any, float]:
        """One PredictionService call by method name (`Predict`, `Classify`, `Regress`,
        `MultiInference`) with a request message the caller built (`tf_protos` classes, e.g. one read
        from a request log); (response, seconds). ClientError on any failure."""
        return self._call(PREDICTION_SERVICE, method, request)

    def model_status(self, model: str, version: int | None = None) -> list[dict[str, Any]]:
        """`model_version_status` as the REST API shows it: version, state name, status."""
        request = tf_protos.message_class("tensorflow.serving.GetModelStatusRequest")()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        response, _ = self._call(MODEL_SERVICE, "GetModelStatus", request)
        state = tf_protos.enum("tensorflow.serving.ModelVersionStatus.State")
        return [{"version": entry.version, "state": state.Name(entry.state),
                 "status": {"error_code": _code_name(entry.status.error_code),
                            "error_message": entry.status.error_message}}
                for entry in response.model_version_status]

    def metadata(self, model: str, version: int | None = None, label: str | None = None) -> dict[str, Any]:
        """GetModelMetadata(signature_def) as the REST metadata JSON: model_spec and signature_def."""
        from google.protobuf import json_format

        request = tf_protos.message_class("tensorflow.serving.GetModelMetadataRequest")()
        _model_spec(request.model_spec, model, version, label, None)
        request.metadata_field.append("signature_def")
        response, _ = self._call(PREDICTION_SERVICE, "GetModelMetadata", request)
        signature_map = tf_protos.message_class("tensorflow.serving.SignatureDefMap")()
        response.metadata["signature_def"].Unpack(signature_map)
        as_dict = json_format.MessageToDict(signature_map, preserving_proto_field_name=True)
        return {"model_spec": {"name": response.model_spec.name,
                               "version": str(response.model_spec.version.value)},
                "metadata": {"signature_def": as_dict}}

    def health(self, service: str = "") -> str:
        """The grpc.health.v1 status of `service` ("" = the whole server): SERVING, NOT_SERVING,
        SERVICE_UNKNOWN or UNKNOWN. A server without the health service raises ClientError."""
        from grpc_health.v1 import health_pb2

        response, _ = self._call(HEALTH_SERVICE, "Check", health_pb2.HealthCheckRequest(service=service))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)

    def _input_name(self, model: str, version: int | None, label: str | None, signature: str) -> str:
        cache_key = (model, version, label, signature)
        if cache_key not in self._inputs:
            defs = self.metadata(model, version, label)["metadata"]["signature_def"].get("signature_def", {})
            inputs = list(defs.get(signature, {}).get("inputs", {}))
            if len(inputs) != 1:
                raise ClientError(f"Signature {signature!r} of {model} has inputs {inputs}, not exactly one",
                                  url=self.url, hint="Pass input_name= to say which input the rows are.")
            self._inputs[cache_key] = inputs[0]
        return self._inputs[cache_key]


def _model_spec(spec: Any, model: str, version: int | None, label: str | None, signature: str | None) -> None:
    spec.name = model
    if label:
        spec.version_label = label
    elif version is not None:
        spec.version.value = version
    if signature:
        spec.signature_name = signature


def as_exchange(url: str, body: dict[str, Any],
                answer: GrpcPredictResult | GrpcExamplesResult) -> PredictResult:
    """A gRPC answer shown like a REST exchange: ``body`` as sent, the answer's model spec, and its
    ``outputs`` (Predict) or ``results`` (Classify, Regress) under the key REST's columnar/example
    answers use."""
    values = ({"outputs": answer.outputs} if isinstance(answer, GrpcPredictResult)
              else {"results": answer.results})
    return PredictResult(url=url, request=body, status_code=0, latency_s=answer.latency_s,
                         response={"model_spec": {"name": answer.model, "version": answer.version,
                                                  "signature_name": answer.signature}, **values})


def _float32(value: float) -> float:
    """A proto float at float32 precision, as REST writes it (0.3, not 0.30000001192092896)."""
    import numpy as np

    return float(str(np.float32(value)))


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()


def _code_name(number: int) -> str:
    codes = tf_protos.enum("tensorflow.error.Code")
    return codes.Name(number) if number in codes.values() else str(number)


def _tensor_values(proto: Any, name: str = "output", url: str = "") -> Any:
    """A response TensorProto as nested Python lists (strings as bytes), read by the server's own
    TensorProto reader (`tensor_content`, else the typed values, the last repeated to fill the
    shape: TensorFlow's rules); ClientError if the answer cannot be read."""
    from pipeline.serving.errors import ServingError
    from pipeline.serving.grpc.tensors import to_array

    try:
        return to_array(proto, name).tolist()
    except ServingError as error:
        raise ClientError(f"The answer's {name!r} cannot be read: {error.message}", url=url) from None


def _client_error(error: Any, url: str, timeout: float) -> ClientError:
    import grpc

    code = error.code()
    details = error.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        hint = ("Start a model server with a gRPC port (python -m pipeline.serving --port 8500), "
                "or fix the target.")
    elif code == grpc.StatusCode.DEADLINE_EXCEEDED:
        hint = f"No answer within {timeout:g} s: the server may be busy; try again."
    elif code == grpc.StatusCode.NOT_FOUND:
        hint = "Check the model name and version, or train and export a version."
    elif code == grpc.StatusCode.UNIMPLEMENTED:
        hint = ("The server does not offer this service "
                "(health checks need --enable_grpc_healthcheck_service).")
    else:
        hint = ""
    return ClientError(f"{code.name}: {details}", url=url, hint=hint)
