"""Model warm-up as TF Serving does it: replay `assets.extra/tf_serving_warmup_requests`.

The file is a TFRecord of `PredictionLog` protos (predict, classify, regress or multi_inference
logs; `pipeline.client.warmup` writes one from the request history). Before a version becomes
AVAILABLE, each record's request is run `iterations` times (`--num_request_iterations_for_warmup`)
through the servable's own signatures, batching included, so the first real request pays no
first-call cost. As upstream, a record that cannot be read or run fails the load; more than
`MAX_RECORDS` records is an error too. Without the file there is no warm-up: calling a signature
with made-up inputs would change the state of stateful models (a counter would count it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.serving import storage
from pipeline.serving.errors import DataLoss, InvalidArgument, ServingError, Unimplemented, error_for
from pipeline.serving.storage import StoragePath


class Servable(Protocol):
    """What warm-up needs of a servable (`pipeline.serving.servable.Servable` has it)."""

    def predict_signature(self, signature_name: str) -> Any: ...

    def run(self, signature: Any, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def classify(self, signature_name: str, examples: list[bytes]) -> Any: ...

    def regress(self, signature_name: str, examples: list[bytes]) -> Any: ...

log = logging.getLogger(__name__)

WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_RECORDS = 1000  # TF Serving's kMaxNumRecords
DEFAULT_SIGNATURE = "serving_default"


def warmup_file(version_path: StoragePath) -> StoragePath | None:
    """The version's warm-up file (local or on another TensorFlow file system), or None without one."""
    path = storage.join(version_path, *WARMUP_FILE.parts)
    return path if storage.is_file(path) else None


def replay(servable: Servable, path: StoragePath, iterations: int = 1) -> int:
    """Run every request logged in `path` `iterations` times on `servable`; return the records read.
    Raises ServingError (the load fails) for an unreadable file, an unsupported log or a failed call."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    started = time.perf_counter()
    log.info("Starting to read warmup data for model at %s with model-warmup-options "
             "num_request_iterations: %d", path, iterations)
    count = 0
    try:
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            count += 1
            if count > MAX_RECORDS:
                raise InvalidArgument(
                    f"Number of warmup records exceeds the maximum ({MAX_RECORDS}) at {path}")
            prediction_log = prediction_log_pb2.PredictionLog()
            prediction_log.ParseFromString(record)
            for _ in range(max(1, iterations)):
                _run_log(servable, prediction_log)
    except tf.errors.OpError as error:
        raise DataLoss(f"Failed to read warmup data at {path}: {error.message}") from None
    except ServingError as error:
        raise error_for(error.code, f"Warm-up of {path} failed: {error.message}") from None
    log.info("Finished reading warmup data for model at %s. Number of warmup records read: %d. "
             "Elapsed time (microseconds): %d.", path, count, (time.perf_counter() - started) * 1e6)
    return count


def _run_log(servable: Servable, prediction_log: Any) -> None:
    kind = prediction_log.WhichOneof("log_type")
    if kind == "predict_log":
        request = prediction_log.predict_log.request
        signature = servable.predict_signature(request.model_spec.signature_name or DEFAULT_SIGNATURE)
        servable.run(signature, {key: _array(proto) for key, proto in request.inputs.items()})
    elif kind == "classify_log":
        request = prediction_log.classify_log.request
        servable.classify(_signature_name(request), _examples(request.input))
    elif kind == "regress_log":
        request = prediction_log.regress_log.request
        servable.regress(_signature_name(request), _examples(request.input))
    elif kind == "multi_inference_log":
        request = prediction_log.multi_inference_log.request
        examples = _examples(request.input)
        for task in request.tasks:
            name = task.model_spec.signature_name or DEFAULT_SIGNATURE
            if task.method_name.endswith("/classify"):
                servable.classify(name, examples)
            else:
                servable.regress(name, examples)
    else:
        raise Unimplemented(f"Unsupported log_type for warmup: {kind}")


def _signature_name(request: Any) -> str:
    return request.model_spec.signature_name or DEFAULT_SIGNATURE


def _examples(model_input: Any) -> list[bytes]:
    """Serialized tf.Examples of an Input proto: `example_list`, or `example_list_with_context` with
    the context merged into each example (the concatenated serializations, as TF Serving builds them)."""
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        return [example.SerializeToString() for example in model_input.example_list.examples]
    if kind == "example_list_with_context":
        context = model_input.example_list_with_context.context.SerializeToString()
        return [context + example.SerializeToString()
                for example in model_input.example_list_with_context.examples]
    raise InvalidArgument("Input is empty.")


def _array(proto: Any) -> np.ndarray:
    import tensorflow as tf

    try:
        array = tf.make_ndarray(proto)
    except (TypeError, ValueError) as error:
        raise InvalidArgument(f"Invalid tensor in warmup request: {error}") from None
    return array.astype(object) if array.dtype.kind == "S" else array
