"""Request logs written as the server writes them (`pipeline.serving.request_log.RequestLogger`), for
tests of the readers, the CLI and the Traffic page: predict requests of one float input `x` answered
with `y`, at chosen times, over chosen transports, with chosen outcomes. No TensorFlow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline import tf_protos
from pipeline.serving.log_files import Api, Transport
from pipeline.serving.model_config import LoggingConfig
from pipeline.serving.request_log import LogOptions, RequestLogger

T0 = 1_700_000_000.0
"""2023-11-14T22:13:20Z: the first logged request's time unless a test says otherwise."""


@dataclass(frozen=True)
class Call:
    """One logged predict: inputs `x` ([n, 1] rows), answer `y` (None: failed), and its facts."""

    x: Sequence[float]
    y: Sequence[float] | None = None
    status: str = "OK"
    transport: Transport = Transport.REST
    version: int | None = 1
    label: str | None = None
    latency_ms: float = 2.0
    message: str = ""
    signature: str = "serving_default"


def predict_request(model: str, x: Sequence[float], signature: str = "serving_default") -> object:
    request = tf_protos.message_class("tensorflow.serving.PredictRequest")()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    tensor = request.inputs["x"]
    tensor.dtype = 1
    tensor.tensor_shape.dim.add().size = len(x)
    tensor.tensor_shape.dim.add().size = 1
    tensor.float_val.extend(x)
    return request


def predict_response(model: str, y: Sequence[float], version: int | None) -> object:
    response = tf_protos.message_class("tensorflow.serving.PredictResponse")()
    response.model_spec.name = model
    if version is not None:
        response.model_spec.version.value = version
    tensor = response.outputs["y"]
    tensor.dtype = 1
    tensor.tensor_shape.dim.add().size = len(y)
    tensor.tensor_shape.dim.add().size = 1
    tensor.float_val.extend(y)
    return response


def write_traffic(prefix: Path | str, calls: Sequence[Call], model: str = "m", start: float = T0,
                  step_s: float = 1.0, options: LogOptions | None = None) -> list[Path]:
    """Log `calls` under `prefix` as the server would, `step_s` apart from `start`; the files written."""
    from pipeline.serving import log_files

    times = iter(start + i * step_s for i in range(len(calls) + 1_000))
    now = [start]

    def clock() -> float:
        return now[0]

    logger = RequestLogger(model, LoggingConfig("file", str(prefix), 1.0), str(prefix),
                           options or LogOptions(), clock=clock)
    for call in calls:
        now[0] = next(times)
        response = predict_response(model, call.y, call.version) if call.y is not None else None
        assert logger.log(Api.PREDICT, call.transport, call.status, call.latency_ms / 1000,
                          request=predict_request(model, call.x, call.signature), response=response,
                          message=call.message, version=call.version if call.y is not None else None,
                          label=call.label, signature=call.signature)
    logger.close()
    return log_files.log_files(str(prefix))
