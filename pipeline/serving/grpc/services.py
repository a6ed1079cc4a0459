"""`tensorflow.serving.PredictionService` and `ModelService` on the serving core (grpc.aio servicers).

Contract, shared with the REST front end (`rest/app.py`): the same `ServableManager` answers which
version serves, the same batch queue of a servable signature takes a gRPC and a REST request alike
(so they merge into one model call), the same `Admission` bounds model requests in flight
(UNAVAILABLE past `--max_pending_requests`), the same metrics count them (entrypoint `GRPC`), and a
`ServingError` becomes the gRPC status of the same canonical code with the same message (cut at
1,024 characters as upstream).

Threading: handlers are coroutines on the gRPC server's own event loop, which only receives,
dispatches and sends. Predict/Classify/Regress/MultiInference run whole (tensor conversion, lookup,
model call, answer building) in a worker pool of `--grpc_max_threads` threads; with batching, the
model call and the answer may happen in the worker running the batch the request joined. The answer
reaches the loop with one `call_soon_threadsafe`. A client deadline is the request's `Deadline`:
work not started when it passes is dropped unrun (also from the batch queue), and a cancelled call
abandons its work the same way. Status and metadata are cheap and answered on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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

from pipeline.serving.errors import ServingError, invalid
from pipeline.serving.grpc import inference, tensors
from pipeline.serving.grpc.status import grpc_code, wire_message
from pipeline.serving.manager import ServableManager
from pipeline.serving.metrics import ServerMetrics
from pipeline.serving.overload import Admission, Deadline
from pipeline.serving.servable import Servable

log = logging.getLogger(__name__)

DEFAULT_SIGNATURE = inference.DEFAULT_SIGNATURE
_API_LABELS = {"predict": "Predict", "classify": "Classify", "regress": "Regress"}
SIGNATURE_DEF_FIELD = "signature_def"
Answer = Callable[[Any, BaseException | None], None]
ReloadConfig = Callable[[model_server_config_pb2.ModelServerConfig], None]
"""Applies a new ModelServerConfig live (`ServableManager.apply_config`, the config file's path too)."""


@dataclass(frozen=True)
class GrpcCore:
    """What the gRPC services share with the rest of the server."""

    manager: ServableManager
    metrics: ServerMetrics | None = None
    admission: Admission | None = None
    num_threads: int = 8
    tensor_content: bool = False          # --enable_serialization_as_tensor_content
    reload_config: ReloadConfig | None = None
    ready: Callable[[], bool] | None = None
    """Whether every configured model has a version AVAILABLE (the health service's SERVING);
    None: always ready."""


class Front:
    """The request plumbing both servicers use: worker pool, deadlines, admission, errors, metrics."""

    def __init__(self, core: GrpcCore) -> None:
        self.core = core
        self.manager = core.manager
        self.executor = ThreadPoolExecutor(max_workers=max(1, core.num_threads),
                                           thread_name_prefix="grpc-worker")

    def close(self) -> None:
        """Stop the worker threads once running requests end."""
        self.executor.shutdown(wait=False, cancel_futures=True)

    def servable(self, spec: model_pb2.ModelSpec) -> Servable:
        """The servable a ModelSpec names: by version_label, by version, else the latest."""
        choice = spec.WhichOneof("version_choice")
        version = spec.version.value if choice == "version" else None
        label = spec.version_label if choice == "version_label" else None
        return self.manager.servable(spec.name, version, label)

    async def answer(self, api: str, model_name: str, context: grpc.aio.ServicerContext,
                     produce: Callable[[], Any]) -> Any:
        """The response `await produce()` makes; a ServingError aborts the call with its status."""
        started = time.perf_counter()
        code = "OK"
        try:
            return await produce()
        except ServingError as error:
            code = error.code
            await context.abort(grpc_code(code), wire_message(error.message))
        except asyncio.CancelledError:
            code = "CANCELLED"
            raise
        except Exception as error:  # a bug must cost one request, never the server
            if isinstance(error, grpc.aio.AbortError):
                raise
            code = "INTERNAL"
            log.exception("Internal error serving gRPC %s for model %s", api, model_name)
            await context.abort(grpc.StatusCode.INTERNAL,
                                wire_message(f"Internal error: {type(error).__name__}: {error}"))
        finally:
            self._record(model_name, api, code, time.perf_counter() - started)

    async def in_worker(self, context: grpc.aio.ServicerContext, model_name: str,
                        function: Callable[..., None], *args: Any) -> Any:
        """What `function(answer, deadline, *args)` answers from a worker thread (maybe another
        thread: a batch answers its requests), for a request `Admission` let in."""
        admission = self.core.admission
        if admission is not None:
            try:
                admission.enter()
            except ServingError:
                self._count_drop(model_name, "overloaded")
                raise
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()

        def answer(result: Any, error: BaseException | None) -> None:
            if admission is not None:
                admission.leave()
            try:  # noqa: SIM105 - hot path: no context manager
                loop.call_soon_threadsafe(_resolve, waiter, result, error)
            except RuntimeError:  # the loop closed: the server is shutting down
                pass

        remaining = context.time_remaining()
        deadline = Deadline(remaining)
        try:
            self.executor.submit(self._start, function, answer, deadline, model_name, *args)
        except RuntimeError:  # the pool is shut down: the server is stopping
            if admission is not None:
                admission.leave()
            raise ServingError("UNAVAILABLE", "Server is shutting down") from None
        try:
            if remaining is None:
                return await waiter
            return await asyncio.wait_for(waiter, remaining)
        except TimeoutError:
            deadline.abandon()
            raise ServingError("DEADLINE_EXCEEDED", "Deadline Exceeded") from None
        except asyncio.CancelledError:  # the client cancelled or went away
            deadline.abandon()
            raise

    def _start(self, function: Callable[..., None], answer: Answer, deadline: Deadline, model_name: str,
               *args: Any) -> None:
        """Worker entry: drop a request whose deadline passed while it waited for a worker."""
        if deadline.expired():
            self._count_drop(model_name, "deadline_exceeded")
            answer(None, deadline.error())
            return
        try:
            function(answer, deadline, *args)
        except BaseException as error:  # noqa: BLE001 - becomes the request's error answer
            answer(None, error)

    def _known(self, model_name: str) -> bool:
        return self.manager.serves(model_name)

    def _count_drop(self, model_name: str, reason: str) -> None:
        if self.core.metrics is not None and self._known(model_name):
            self.core.metrics.record_dropped(model_name, reason)

    def _record(self, model_name: str, api: str, code: str, seconds: float) -> None:
        """Predict, Classify and Regress are counted (their latency when OK), as TF Serving's
        PredictionServiceImpl does; other methods are not."""
        metrics = self.core.metrics
        label = _API_LABELS.get(api)
        if metrics is not None and label is not None:
            metrics.record_request(model_name, label, "GRPC", code, seconds)

    def record_runtime(self, model_name: str, api: str, seconds: float, examples: int | None = None) -> None:
        """An OK model call (`api` `Predict`, `Classify`, `Regress`) took `seconds`; with
        `examples`, it carried that many tf.Examples."""
        metrics = self.core.metrics
        if metrics is None:
            return
        if api:
            metrics.record_runtime(model_name, api, seconds)
        if examples is not None:
            metrics.record_examples(model_name, examples)


def _resolve(waiter: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if waiter.done():  # timed out or cancelled already
        return
    if error is not None:
        waiter.set_exception(error)
    else:
        waiter.set_result(result)


def _require_spec(request: Any) -> None:
    if not request.HasField("model_spec"):
        raise invalid("Missing ModelSpec")


def _fill_spec(target: model_pb2.ModelSpec, name: str, version: int, signature_name: str | None) -> None:
    target.name = name
    target.version.value = version
    if signature_name is not None:
        target.signature_name = signature_name


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict, Classify, Regress, MultiInference and GetModelMetadata."""

    def __init__(self, front: Front) -> None:
        self.front = front

    async def Predict(self, request: predict_pb2.PredictRequest, context: grpc.aio.ServicerContext
                      ) -> predict_pb2.PredictResponse:
        name = request.model_spec.name
        return await self.front.answer("predict", name, context,
                                       lambda: self.front.in_worker(context, name, self._predict, request))

    def _predict(self, answer: Answer, deadline: Deadline, request: predict_pb2.PredictRequest) -> None:
        """The whole Predict in TF Serving's order of checks; answers through `answer`."""
        _require_spec(request)
        spec = request.model_spec
        servable = self.front.servable(spec)
        signature_name = spec.signature_name or DEFAULT_SIGNATURE
        signature = servable.predict_signature(signature_name)
        inputs = tensors.predict_inputs(request.inputs, signature.input_dtypes)
        wanted = tensors.output_names(request.output_filter, signature.output_names)
        as_content = self.front.core.tensor_content
        started = time.perf_counter()

        def done(outputs: dict | None, error: BaseException | None) -> None:
            if error is not None:
                answer(None, error)
                return
            self.front.record_runtime(spec.name, "Predict", time.perf_counter() - started)
            try:
                response = predict_pb2.PredictResponse()
                _fill_spec(response.model_spec, spec.name, servable.version, signature_name)
                for alias in wanted:
                    tensors.fill_proto(response.outputs[alias], outputs[alias], as_content)  # type: ignore[index]
            except Exception as format_error:  # noqa: BLE001 - answered like any other error
                answer(None, format_error)
                return
            answer(response, None)

        servable.run_async(signature, inputs, done, deadline)

    async def Classify(self, request: classification_pb2.ClassificationRequest,
                       context: grpc.aio.ServicerContext) -> classification_pb2.ClassificationResponse:
        name = request.model_spec.name
        return await self.front.answer("classify", name, context,
                                       lambda: self.front.in_worker(context, name, self._classify, request))

    def _classify(self, answer: Answer, deadline: Deadline, request: classification_pb2.ClassificationRequest
                  ) -> None:
        _require_spec(request)
        examples = inference.serialized_examples(request.input)
        servable = self.front.servable(request.model_spec)
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        started = time.perf_counter()
        classes, scores = servable.classify(signature_name, examples, deadline)
        self.front.record_runtime(request.model_spec.name, "Classify", time.perf_counter() - started,
                                  len(examples))
        response = classification_pb2.ClassificationResponse()
        _fill_spec(response.model_spec, request.model_spec.name, servable.version, signature_name)
        response.result.CopyFrom(inference.classification_result(classes, scores))
        answer(response, None)

    async def Regress(self, request: regression_pb2.RegressionRequest, context: grpc.aio.ServicerContext
                      ) -> regression_pb2.RegressionResponse:
        name = request.model_spec.name
        return await self.front.answer("regress", name, context,
                                       lambda: self.front.in_worker(context, name, self._regress, request))

    def _regress(self, answer: Answer, deadline: Deadline, request: regression_pb2.RegressionRequest) -> None:
        _require_spec(request)
        examples = inference.serialized_examples(request.input)
        servable = self.front.servable(request.model_spec)
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        started = time.perf_counter()
        values = servable.regress(signature_name, examples, deadline)
        self.front.record_runtime(request.model_spec.name, "Regress", time.perf_counter() - started,
                                  len(examples))
        response = regression_pb2.RegressionResponse()
        _fill_spec(response.model_spec, request.model_spec.name, servable.version, signature_name)
        response.result.CopyFrom(inference.regression_result(values))
        answer(response, None)

    async def MultiInference(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        name = request.tasks[0].model_spec.name if request.tasks else ""
        return await self.front.answer(
            "multi_inference", name, context,
            lambda: self.front.in_worker(context, name, self._multi_inference, request))

    def _multi_inference(self, answer: Answer, deadline: Deadline, request: Any) -> None:
        if not request.tasks:
            raise invalid("MultiInferenceRequest must specify at least one task")
        examples = inference.serialized_examples(request.input)
        servable = self.front.servable(request.tasks[0].model_spec)
        response = inference.multi_inference(servable, request, examples, deadline)
        self.front.record_runtime(request.tasks[0].model_spec.name, "", 0.0, len(examples))
        answer(response, None)

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
        raise invalid("GetModelMetadataRequest must specify at least one metadata_field")
    for field in request.metadata_field:
        if field != SIGNATURE_DEF_FIELD:
            raise invalid(f"Metadata field {field} is not supported")
    servable = front.servable(request.model_spec)
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
            return self.front.manager.model_status(spec.name, version)  # labels ignored, as upstream

        return await self.front.answer("status", request.model_spec.name, context, produce)

    async def HandleReloadConfigRequest(self, request: model_management_pb2.ReloadConfigRequest,
                                        context: grpc.aio.ServicerContext
                                        ) -> model_management_pb2.ReloadConfigResponse:
        async def produce() -> model_management_pb2.ReloadConfigResponse:
            check_reload_config(request)
            reload = self.front.core.reload_config
            if reload is None:
                raise ServingError("FAILED_PRECONDITION", "This server cannot apply a new model config")
            await asyncio.get_running_loop().run_in_executor(self.front.executor, reload, request.config)
            return model_management_pb2.ReloadConfigResponse()  # status error_code OK (0)

        return await self.front.answer("reload_config", "", context, produce)


def check_reload_config(request: model_management_pb2.ReloadConfigRequest) -> None:
    """Only a `model_config_list` can be applied live, as upstream."""
    if request.config.WhichOneof("config") != "model_config_list":
        raise invalid("ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                      "ModelConfigList is currently supported")


def service_names() -> Sequence[str]:
    """The full names of the two services, as reflection and health checks list them."""
    from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

    return (prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name,
            model_service_pb2.DESCRIPTOR.services_by_name["ModelService"].full_name)
