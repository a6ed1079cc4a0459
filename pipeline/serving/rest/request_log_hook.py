"""The REST front end's hook into the request logs: a sampled request's record, as gRPC would send it.

A REST request is JSON, but a request log holds `PredictionLog` records (`log_files.py`), so a
sampled REST request is logged as the protobuf request and response a gRPC client would have sent
and received for it: `PredictRequest` with the parsed input tensors, `PredictResponse` with the
outputs (every output: REST has no output filter), `ClassificationRequest`/`RegressionRequest`
with the tf.Examples, and their responses. `RestRequestTrace` collects what the request path has
(version, signature, tensors or examples, results) as it runs; the messages are built only when the
record is written (`RequestLogger.log`). A request that failed before its inputs were parsed is
logged with its model spec only. Only sampled requests get a trace, so the others cost nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from tensorflow_serving.apis import classification_pb2, model_pb2, predict_pb2, regression_pb2

from pipeline.serving.grpc import inference, tensors

_REQUESTS = {"predict": predict_pb2.PredictRequest, "classify": classification_pb2.ClassificationRequest,
             "regress": regression_pb2.RegressionRequest}


@dataclass
class RestRequestTrace:
    """What one sampled REST predict/classify/regress request carried and answered (filled in by
    `RestApi._infer` as the request runs; whatever is unset stays out of the record)."""

    api: str
    model: str
    label: str | None = None
    version: int | None = None
    signature: str = inference.DEFAULT_SIGNATURE
    inputs: dict[str, np.ndarray] | None = None
    outputs: dict[str, np.ndarray] | None = None
    examples: list[bytes] | None = None
    classes: np.ndarray | None = None
    scores: np.ndarray | None = None
    values: np.ndarray | None = None

    def _spec(self, target: model_pb2.ModelSpec, answered: bool) -> None:
        target.name = self.model
        if answered and self.version is not None:
            target.version.value = self.version
        elif not answered and self.label is not None:
            target.version_label = self.label
        target.signature_name = self.signature

    def request(self) -> Any:
        """The request as a gRPC client would have sent it."""
        message = _REQUESTS[self.api]()
        self._spec(message.model_spec, answered=False)
        if self.api == "predict":
            for name, array in (self.inputs or {}).items():
                tensors.fill_proto(message.inputs[name], array)
        else:
            for serialized in self.examples or []:
                message.input.example_list.examples.add().ParseFromString(serialized)
        return message

    def response(self) -> Any:
        """The answer as a gRPC client would have received it; None when there is none."""
        if self.api == "predict" and self.outputs is not None:
            message = predict_pb2.PredictResponse()
            for name, array in self.outputs.items():
                tensors.fill_proto(message.outputs[name], array)
        elif self.api == "classify" and (self.classes is not None or self.scores is not None):
            message = classification_pb2.ClassificationResponse()
            message.result.CopyFrom(inference.classification_result(self.classes, self.scores))
        elif self.api == "regress" and self.values is not None:
            message = regression_pb2.RegressionResponse()
            message.result.CopyFrom(inference.regression_result(self.values))
        else:
            return None
        self._spec(message.model_spec, answered=True)
        return message
