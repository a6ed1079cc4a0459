"""Classify, Regress and MultiInference over gRPC: `Input` protos in, result protos out.

The model work is the core's (`Servable.classify`/`regress` on serialized `tf.Example`s), shared with
the REST front end; this module only turns TF Serving's `Input` message into those serialized
examples and the numpy results into `ClassificationResult`/`RegressionResult`, as upstream's
`classifier.cc`/`regressor.cc` do.

`ExampleListWithContext`: each example is the context merged with the example, which is what
concatenating their serializations means in protobuf (the example's own features win).
"""

from __future__ import annotations

import numpy as np
from tensorflow_serving.apis import classification_pb2, inference_pb2, input_pb2, regression_pb2

from pipeline.serving.dataplane import CLASSIFY_METHOD, REGRESS_METHOD, Deadline, Servable
from pipeline.serving.errors import InvalidArgument, Unimplemented

DEFAULT_SIGNATURE = "serving_default"


def serialized_examples(request_input: input_pb2.Input) -> list[bytes]:
    """The `tf.Example`s of an `Input`, serialized (context merged in); [] when it holds none."""
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [example.SerializeToString() for example in request_input.example_list.examples]
    if kind == "example_list_with_context":
        with_context = request_input.example_list_with_context
        context = with_context.context.SerializeToString()
        return [context + example.SerializeToString() for example in with_context.examples]
    return []


def classification_result(classes: np.ndarray | None, scores: np.ndarray | None
                          ) -> classification_pb2.ClassificationResult:
    """One `Classifications` per example: labels from `classes`, scores from `scores` (either may be
    absent, as in TF Serving)."""
    result = classification_pb2.ClassificationResult()
    rows = (classes if classes is not None else scores).shape[0]  # type: ignore[union-attr]
    width = (classes if classes is not None else scores).shape[1]  # type: ignore[union-attr]
    score_rows = scores.astype(np.float32).tolist() if scores is not None else None
    for row in range(rows):
        classifications = result.classifications.add()
        for column in range(width):
            item = classifications.classes.add()
            if classes is not None:
                label = classes[row, column]
                item.label = label.decode("utf-8", "replace") if isinstance(label, bytes) else str(label)
            if score_rows is not None:
                item.score = score_rows[row][column]
    return result


def regression_result(values: np.ndarray) -> regression_pb2.RegressionResult:
    """One `Regression` per example."""
    result = regression_pb2.RegressionResult()
    for value in values.astype(np.float32).tolist():
        result.regressions.add().value = value
    return result


def multi_inference(servable: Servable, request: inference_pb2.MultiInferenceRequest,
                    examples: list[bytes], deadline: Deadline | None = None
                    ) -> inference_pb2.MultiInferenceResponse:
    """Run every task of a MultiInferenceRequest on one servable, with TF Serving's checks: at least
    one task, one model name for all, each signature once, only classify and regress methods."""
    if not request.tasks:
        raise InvalidArgument("MultiInferenceRequest must specify at least one task")
    model_name = request.tasks[0].model_spec.name
    seen: set[str] = set()
    for task in request.tasks:
        if task.model_spec.name != model_name:
            raise InvalidArgument(
                "All ModelSpecs in a MultiInferenceRequest must access the same model name.")
        signature_name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        if signature_name in seen:
            raise InvalidArgument(f"Duplicate evaluation of signature: {signature_name}")
        seen.add(signature_name)
        if task.method_name not in (CLASSIFY_METHOD, REGRESS_METHOD):
            raise Unimplemented(f"Unsupported signature method_name: {task.method_name}")
    response = inference_pb2.MultiInferenceResponse()
    for task in request.tasks:
        signature_name = task.model_spec.signature_name or DEFAULT_SIGNATURE
        result = response.results.add()
        result.model_spec.name = model_name
        result.model_spec.version.value = servable.version
        result.model_spec.signature_name = signature_name
        if task.method_name == CLASSIFY_METHOD:
            result.classification_result.CopyFrom(
                classification_result(*servable.classify(signature_name, examples, deadline)))
        else:
            result.regression_result.CopyFrom(
                regression_result(servable.regress(signature_name, examples, deadline)))
    return response
