"""`tensorflow.serving.PredictionService` and `ModelService` on the serving core (grpc.aio servicers).

Contract, shared with the REST front end (`rest/app.py`): the same `ServableManager` answers which
version serves, the same batch queue of a servable signature takes a gRPC and a REST request alike
(so they merge into one model call), the same `Admission` bounds model requests in flight
(UNAVAILABLE past `--max_pending_requests`), the same metrics count them (entrypoint `GRPC`), and a
`ServingError` becomes the gRPC status of the same canonical code with the same message (cut at
1,024 characters as upstream).

The request path is the data plane's (`dataplane.py`), shared with REST: this module is a codec
(read the request proto, build the response proto). Handlers are coroutines on the gRPC server's own
event loop, which only receives, dispatches and sends. Predict/Classify/Regress/MultiInference run
whole (tensor conversion, lookup, model call, answer building) in a worker of the gRPC lane
(`--grpc_max_threads` threads); with batching, the model call and the answer may happen in the
worker running the batch the request joined. A client deadline is the request's `Deadline`; a
cancelled call (the client cancelled or went away) frees its admission slot at once and abandons
its work. Status and metadata are cheap and answered on the loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)
from tensorflow_serving.config import model_server_config_pb2

from pipeline.serving.dataplane import DataPlane, Deadline, Servable, Signature, Target
from pipeline.serving.errors import Code, FailedPrecondition, InvalidArgument, ServingError
from pipeline.serving.grpc import inference, tensors
from pipeline.serving.grpc.status import grpc_code, wire_message

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = inference.DEFAULT_SIGNATURE
_API_LABELS = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
SIGNATURE_DEF_FIELD = "signature_def"
ReloadConfig = Callable[[model_server_config_pb2.ModelServerConfig], None]
"""Applies a new ModelServerConfig live (`ServableManager.apply_config`, the config file's path too)."""


@dataclass(frozen=True)
class GrpcCore:
    """What the gRPC services share with the rest of the server."""

    plane: DataPlane
    num_threads: int = 8
    tensor_content: bool = False          # --enable_serialization_as_tensor_content
    reload_config: ReloadConfig | None = None
    ready: Callable[[], bool] | None = None
    """Whether every configured model has a version AVAILABLE (the health service's SERVING);
    None: always ready."""


class Front:
    """What both servicers share: the gRPC lane of the data plane, and the answer to a call."""

    def __init__(self, core: GrpcCore) -> None:
        self.core = core
        self.plane = core.plane
        self.lane = core.plane.lane("GRPC", core.num_threads)
        self.executor = self.lane.executor

    def close(self) -> None:
        """Stop the worker threads once running requests end."""
        self.lane.close()

    async def answer(self, api: str, model_name: str, context: grpc.aio.ServicerContext,
                     produce: Callable[[], Any]) -> Any:
        """The response `await produce()` makes; a ServingError aborts the call with its status.
        The request is counted before its answer leaves (`abort` sends the status at once), so a
        client that reads the metrics after its answer finds it counted."""
        started = time.perf_counter()
        label = _API_LABELS.get(api)  # Predict, Classify and Regress are counted, as upstream
        try:
            response = await produce()
        except ServingError as error:
            self._record(model_name, label, error.code, started)
            await context.abort(grpc_code(error.code), wire_message(error.message))
        except asyncio.CancelledError:
            self._record(model_name, label, Code.CANCELLED, started)
            raise
        except Exception as error:  # a bug must cost one request, never the server
            if isinstance(error, grpc.aio.AbortError):
                raise
            self._record(model_name, label, Code.INTERNAL, started)
            log.exception("Internal error serving gRPC %s for model %s", api, model_name)
            await context.abort(grpc.StatusCode.INTERNAL,
                                wire_message(f"Internal error: {type(error).__name__}: {error}"))
        self._record(model_name, label, Code.OK, started)
        return response

    def _record(self, model_name: str, label: str | None, code: Code, started: float) -> None:
        if label is not None:
            self.lane.record(model_name, label, code, started)

    def predict(self, context: grpc.aio.ServicerContext, model_name: str, parse: Callable[[Any], Any],
                request: Any) -> Any:
        """`parse(trace)` in the lane; a sampled request is logged as it went over the wire."""
        return self.lane.predict(model_name, parse, context.time_remaining(), DEADLINE_MESSAGE,
                                 trace_for=functools.partial(_Trace, "predict", request), api="Predict")

    def examples(self, context: grpc.aio.ServicerContext, model_name: str, parse: Callable[[Any], Any],
                 api: str, request: Any) -> Any:
        """As `predict`; where the time went is recorded for the APIs `request_latency` times."""
        return self.lane.examples(model_name, parse, context.time_remaining(), DEADLINE_MESSAGE,
                                  trace_for=functools.partial(_Trace, api, request), api=_API_LABELS.get(api))


DEADLINE_MESSAGE = "Deadline Exceeded"


def target_of(spec: model_pb2.ModelSpec) -> Target:
    """The servable a ModelSpec names: by version_label, by version, else the latest."""
    choice = spec.WhichOneof("version_choice")
    return Target(spec.name, spec.version.value if choice == "version" else None,
                  spec.version_label if choice == "version_label" else None)


class _Trace:
    """A sampled gRPC inference call as its request log records it: the request and response
    messages as they went over the wire (`dataplane.RequestTrace`)."""

    __slots__ = ("api", "label", "version", "signature", "_request", "answer")

    def __init__(self, api: str, request: Any) -> None:
        self.api = api
        self._request = request
        self.answer: Any = None  # the response message, once built
        self.version: int | None = None
        asked = _spec_of(request)
        self.label = asked.version_label if asked is not None and asked.HasField("version_label") else None
        self.signature = (asked.signature_name if asked is not None else "") or DEFAULT_SIGNATURE

    def request(self) -> Any:
        return self._request

    def response(self) -> Any:
        return self.answer


def _spec_of(message: Any) -> model_pb2.ModelSpec | None:
    """The ModelSpec of an inference request or response (a MultiInference's first task or
    result); None if it has none."""
    if message is None:
        return None
    if hasattr(message, "tasks"):
        return message.tasks[0].model_spec if message.tasks else None
    if hasattr(message, "results"):
        return message.results[0].model_spec if message.results else None
    return message.model_spec if message.HasField("model_spec") else None


def _require_spec(request: Any) -> None:
    if not request.HasField("model_spec"):
        raise InvalidArgument("Missing ModelSpec")


def _fill_spec(target: model_pb2.ModelSpec, name: str, version: int, signature_name: str | None) -> None:
    target.name = name
    target.version.value = version
    if signature_name is not None:
        target.signature_name = signature_name


class _Predict:
    """A gRPC Predict, read in a worker in TF Serving's order of checks."""

    __slots__ = ("target", "signature_name", "_request", "_wanted", "_as_content", "_trace")

    def __init__(self, request: predict_pb2.PredictRequest, as_content: bool, trace: _Trace | None) -> None:
        self._trace = trace
        _require_spec(request)
        self._request = request
        self.target = target_of(request.model_spec)
        self.signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        self._as_content = as_content

    def inputs(self, signature: Signature) -> dict:
        inputs = tensors.predict_inputs(self._request.inputs, signature.input_dtypes)
        self._wanted = tensors.output_names(self._request.output_filter, signature.output_names)
        return inputs

    def response(self, version: int, outputs: dict) -> predict_pb2.PredictResponse:
        response = predict_pb2.PredictResponse()
        _fill_spec(response.model_spec, self.target.model_name, version, self.signature_name)
        for alias in self._wanted:
            tensors.fill_proto(response.outputs[alias], outputs[alias], self._as_content)
        if self._trace is not None:
            self._trace.answer = response
        return response


class _Examples:
    """A Classify or Regress call: `tf.Example`s in, the servable's `method` run, `result` of what
    it computed put in a `response_type` answer."""

    __slots__ = ("target", "signature_name", "example_count", "_examples", "_trace")
    runtime_api: str
    method: str
    response_type: Any

    def __init__(self, request: Any, trace: _Trace | None) -> None:
        self._trace = trace
        _require_spec(request)
        self._examples = inference.serialized_examples(request.input)
        self.target = target_of(request.model_spec)
        self.signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        self.example_count = len(self._examples)

    def run(self, servable: Servable, deadline: Deadline) -> Any:
        return getattr(servable, self.method)(self.signature_name, self._examples, deadline)

    def result(self, computed: Any) -> Any:
        raise NotImplementedError

    def response(self, version: int, computed: Any) -> Any:
        response = self.response_type()
        _fill_spec(response.model_spec, self.target.model_name, version, self.signature_name)
        response.result.CopyFrom(self.result(computed))
        if self._trace is not None:
            self._trace.answer = response
        return response


class _Classify(_Examples):
    __slots__ = ()
    runtime_api, method, response_type = "Classify", "classify", classification_pb2.ClassificationResponse

    def result(self, computed: tuple) -> Any:
        return inference.classification_result(*computed)


class _Regress(_Examples):
    __slots__ = ()
    runtime_api, method, response_type = "Regress", "regress", regression_pb2.RegressionResponse

    def result(self, computed: Any) -> Any:
        return inference.regression_result(computed)


class _MultiInference:
    __slots__ = ("target", "runtime_api", "example_count", "_examples", "_request", "_trace")

    def __init__(self, request: Any, trace: _Trace | None) -> None:
        self._trace = trace
        if not request.tasks:
            raise InvalidArgument("MultiInferenceRequest must specify at least one task")
        self._examples = inference.serialized_examples(request.input)
        self._request = request
        self.target = target_of(request.tasks[0].model_spec)
        self.runtime_api = ""
        self.example_count = len(self._examples)

    def run(self, servable: Servable, deadline: Deadline) -> Any:
        """The answer itself: a MultiInference builds its results as it runs each task."""
        response = inference.multi_inference(servable, self._request, self._examples, deadline)
        if self._trace is not None:
            self._trace.answer = response
        return response

    def response(self, version: int, result: Any) -> Any:
        return result


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress, MultiInference and GetModelMetadata."""

    def __init__(self, front: Front) -> None:
        self.front = front

    async def Predict(self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
                      ) -> predict_pb2.PredictResponse:
        name, front = request.model_spec.name, self.front
        as_content = front.core.tensor_content
        return await front.answer("predict", name, context, lambda: front.predict(
            context, name, lambda trace: _Predict(request, as_content, trace), request))

    async def Classify(self, request: classification_pb2.ClassificationRequest,
                       context: grpc.aio.ServicerContext) -> classification_pb2.ClassificationResponse:
        name, front = request.model_spec.name, self.front
        return await front.answer("classify", name, context, lambda: front.examples(
            context, name, lambda trace: _Classify(request, trace), "classify", request))

    async def Regress(self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
                      ) -> regression_pb2.RegressionResponse:
        name, front = request.model_spec.name, self.front
        return await front.answer("regress", name, context, lambda: front.examples(
            context, name, lambda trace: _Regress(request, trace), "regress", request))

    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        name, front = (request.tasks[0].model_spec.name if request.tasks else ""), self.front
        return await front.answer("multi_inference", name, context, lambda: front.examples(
            context, name, lambda trace: _MultiInference(request, trace), "multi_inference", request))

    async def GetModelMetadata(self, request: get_model_metadata_pb2.GetModelMetadataRequest,
                               context: grpc.aio.ServicerContext
                               ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        async def produce() -> get_model_metadata_pb2.GetModelMetadataResponse:
            return model_metadata(self.front, request)

        return await self.front.answer("metadata", request.model_spec.name, context, produce)


def model_metadata(front: Front, request: get_model_metadata_pb2.GetModelMetadataRequest
                   ) -> get_model_metadata_pb2.GetModelMetadataResponse:
    """GetModelMetadata as TF Serving answers it: only `signature_def` may be asked for."""
    _require_spec(request)
    if not request.metadata_field:
        raise InvalidArgument("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise InvalidArgument(f"Metadata field {field} is not supported")
    servable = front.plane.servable(target_of(request.model_spec))
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    _fill_spec(response.model_spec, request.model_spec.name, servable.version, None)
    response.metadata[SIGNATURE_DEF_FIELD].Pack(servable.signature_def_map)
    return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus and HandleReloadConfigRequest."""

    def __init__(self, front: Front) -> None:
        self.front = front

    async def GetModelStatus(self, request: get_model_status_pb2.GetModelStatusRequest,
                             context: grpc.aio.ServicerContext
                             ) -> get_model_status_pb2.GetModelStatusResponse:
        async def produce() -> get_model_status_pb2.GetModelStatusResponse:
            _require_spec(request)
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            return self.front.plane.model_status(spec.name, version)  # labels ignored, as upstream

        return await self.front.answer("status", request.model_spec.name, context, produce)

    async def HandleReloadConfigRequest(self, request: model_management_pb2.ReloadConfigRequest,
                                        context: grpc.aio.ServicerContext
                                        ) -> model_management_pb2.ReloadConfigResponse:
        async def produce() -> model_management_pb2.ReloadConfigResponse:
            check_reload_config(request)
            reload = self.front.core.reload_config
            if reload is None:
                raise FailedPrecondition("This server cannot apply a new model config")
            await asyncio.get_running_loop().run_in_executor(self.front.executor, reload, request.config)
            return model_management_pb2.ReloadConfigResponse()  # status error_code OK (0)

        return await self.front.answer("reload_config", "", context, produce)


def check_reload_config(request: model_management_pb2.ReloadConfigRequest) -> None:
    """Only a `model_config_list` can be applied live, as upstream."""
    if request.config.WhichOneof("config") != "model_config_list":
        raise InvalidArgument("ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                      "ModelConfigList is currently supported")


def service_names() -> Sequence[str]:
    """The full names of the two services, as reflection and health checks list them."""
    from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

    return (prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
            model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name)
