"""One loaded version of a SavedModel: its signatures, a warm-up, and the calls that run them.

A `Servable` is immutable after `Servable.load` returns and safe to call from many threads at once
(TensorFlow concrete functions are). It never talks HTTP: callers hand it numpy arrays (predict) or
serialized `tf.Example`s (classify, regress) and get numpy arrays back, or a `ServingError` carrying
a canonical status code name and TF Serving's message text. The REST layer (and a later gRPC layer)
turn those into their wire formats.

Everything that does not depend on a request is computed once at load: the signature functions
(`tf.saved_model.load(path).signatures[name]`, never `Model.predict`), input name -> dtype name
maps, output names, input specs for shape messages, the flat input specs of the fast call
(`tf_fastcall`, verified at load by a probe call through both paths), the batch queue of each
signature when batching is on, and the `SignatureDefMap` of the `serve` MetaGraph
(`pipeline.model_dir.read_meta_graph`, the project's one SavedModel reader) for metadata.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from pipeline.model_dir import SERVE_TAG, ModelDirError, read_meta_graph
from pipeline.serving import tf_fastcall
from pipeline.serving.batching import BatchQueue, BatchScheduler, Done, QueueFullError
from pipeline.serving.errors import ServingError, clean_tf_message, from_code_number
from pipeline.serving.overload import Deadline

log = logging.getLogger(__name__)

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"
_EXAMPLE_METHODS = (CLASSIFY_METHOD, REGRESS_METHOD)
WarmupListener = Callable[[str], None]
"""Told the model name when a signature's warm-up call failed."""


@dataclass(frozen=True)
class Signature:
    """A callable signature with everything request-independent precomputed."""

    name: str
    method_name: str
    function: Callable[..., Mapping[str, Any]]
    input_dtypes: Mapping[str, str]       # input key -> DataType name, e.g. "DT_FLOAT"
    input_shapes: Mapping[str, Any]       # input key -> tf.TensorShape of the signature
    output_names: tuple[str, ...]
    # The fast call, when the function allows it: inputs in flat order as (key, numpy dtype, dims or
    # None for any rank), checked in Python, then passed as tensors without TF's argument binding.
    flat_inputs: tf_fastcall.FlatSpecs | None = None
    batch_queue: BatchQueue | None = None  # with --enable_batching: merges concurrent calls


class Servable:
    """A loaded SavedModel version. Build with `Servable.load`; then read-only and thread-safe."""

    def __init__(self, name: str, version: int, path: Path, signatures: dict[str, Signature],
                 signature_def_map: get_model_metadata_pb2.SignatureDefMap, loaded: Any = None) -> None:
        self._loaded = loaded  # the restored object: keeps variables and functions alive
        self.name = name
        self.version = version
        self.path = path
        self.signatures = signatures
        self.signature_def_map = signature_def_map
        # The metadata body without model_spec, as TF Serving prints it (Any unpacked, proto names).
        self.metadata_dict = {"signature_def": json_format.MessageToDict(
            signature_def_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)}

    @classmethod
    def load(cls, name: str, version: int, path: Path, warmup: bool = True,
             batching: BatchScheduler | None = None, on_warmup_failure: WarmupListener | None = None
             ) -> Servable:
        """Load `path` (a version dir); raise ServingError with a canonical code if it cannot serve.
        With a `batching` scheduler, concurrent `run`s of one signature are merged into one call.
        A failed warm-up is logged as a warning and reported to `on_warmup_failure`."""
        started = time.perf_counter()
        try:
            signature_defs = dict(read_meta_graph(path).signature_def)
        except ModelDirError as error:
            raise ServingError(error.code, error.message) from None
        try:
            loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        except tf.errors.OpError as error:
            raise from_code_number(error.error_code, error.message) from None
        except (OSError, ValueError, RuntimeError) as error:
            raise ServingError("UNKNOWN", f"Failed to load SavedModel at {path}: {error}") from error
        signatures = {
            key: _signature(key, function, signature_defs[key])
            for key, function in loaded.signatures.items() if key in signature_defs
        }
        if batching is not None:
            signatures = {key: dataclasses.replace(
                signature, batch_queue=batching.queue(name, functools.partial(call_signature, signature)))
                for key, signature in signatures.items()}
        sdm = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in signature_defs.items():
            sdm.signature_def[key].CopyFrom(signature_def)
        servable = cls(name, version, path, signatures, sdm, loaded)
        if warmup:
            servable.warm_up(on_warmup_failure)
        log.info("Loaded servable version {name: %s version: %d} from %s in %.2f s",
                 name, version, path, time.perf_counter() - started)
        return servable

    def warm_up(self, on_failure: WarmupListener | None = None) -> None:
        """Call each signature once with a batch of one zero/empty element, so the first real
        request does not pay for graph initialization. A failure here is not a load failure, but it
        is logged as a warning and told to `on_failure` (a model that refuses zeros may refuse real
        inputs too). Signatures with a fast call are skipped: its probe at load called them already;
        so are classify/regress signatures: their input is serialized tf.Examples, and an empty one is
        not a valid example for a model that requires features (TF Serving itself warms up only from
        `assets.extra` requests)."""
        for signature in self.signatures.values():
            if signature.flat_inputs is not None or signature.method_name in _EXAMPLE_METHODS:
                continue
            inputs = {key: _zeros(shape, signature.input_dtypes[key])
                      for key, shape in signature.input_shapes.items()}
            try:
                signature.function(**inputs)
            except Exception as error:  # noqa: BLE001 - any model error just means no warm-up
                text = clean_tf_message(error.message) if isinstance(error, tf.errors.OpError) else str(error)
                log.warning("Warm-up of %s version %d signature %s failed: %s",
                            self.name, self.version, signature.name, " ".join(text.split())[:500])
                if on_failure is not None:
                    on_failure(self.name)

    def predict_signature(self, signature_name: str) -> Signature:
        """The signature a predict request names, or INVALID_ARGUMENT with TF Serving's text."""
        signature = self.signatures.get(signature_name)
        if signature is None:
            raise ServingError("INVALID_ARGUMENT",
                               f'Serving signature name: "{signature_name}" not found in signature def')
        return signature

    def run(self, signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run `signature` on `inputs` (extra keys ignored) and return every output as numpy.
        With batching, blocks until the batch holding this call has run; a full queue is UNAVAILABLE."""
        inputs = _exact_inputs(signature, inputs)
        if signature.batch_queue is not None:
            try:
                return signature.batch_queue.submit(inputs)
            except QueueFullError as error:
                raise ServingError("UNAVAILABLE", str(error)) from None
        return call_signature(signature, inputs)

    def run_async(self, signature: Signature, inputs: Mapping[str, np.ndarray], done: Done,
                  deadline: Deadline | None = None) -> None:
        """`run` answering through `done(outputs, None)` or `done(None, error)`, exactly once, in the
        thread that ran the (batched) call: maybe this one before returning, maybe another. Missing
        inputs and a full batch queue raise ServingError here instead, and `done` is not called.
        A batched call whose `deadline` expired while queued is answered with its error, unrun."""
        inputs = _exact_inputs(signature, inputs)
        if signature.batch_queue is not None:
            try:
                signature.batch_queue.submit_async(inputs, done, deadline)
            except QueueFullError as error:
                raise ServingError("UNAVAILABLE", str(error)) from None
            return
        try:
            outputs = call_signature(signature, inputs)
        except Exception as error:  # noqa: BLE001 - handed to `done`, like a batched call's error
            done(None, error)
        else:
            done(outputs, None)

    def classify(self, signature_name: str,
                 examples: list[bytes]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Classify serialized Examples: (classes [batch, n] bytes or None, scores [batch, n] or None)."""
        signature = self._inference_signature(signature_name, CLASSIFY_METHOD, "classification")
        if len(signature.output_names) not in (1, 2):
            raise ServingError("INVALID_ARGUMENT",
                               f"Expected one or two output Tensors, found {len(signature.output_names)}")
        if "classes" not in signature.output_names and "scores" not in signature.output_names:
            raise ServingError("INVALID_ARGUMENT",
                               "Expected classification signature outputs to contain at least one of "
                               "'classes' or 'scores'")
        outputs = self._run_examples(signature, examples)
        classes, scores = outputs.get("classes"), outputs.get("scores")
        for label, tensor in (("classes", classes), ("scores", scores)):
            if tensor is not None:
                _check_batch(tensor, len(examples), label, allow_vector=False)
        if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
            raise ServingError("INVALID_ARGUMENT",
                               f"Tensors class and score should match in dim[1]. Got {classes.shape[1]} "
                               f"vs. {scores.shape[1]}")
        return classes, scores

    def regress(self, signature_name: str, examples: list[bytes]) -> np.ndarray:
        """Regress serialized Examples: one value per example, shape [batch]."""
        signature = self._inference_signature(signature_name, REGRESS_METHOD, "regression")
        if len(signature.output_names) != 1:
            raise ServingError("INVALID_ARGUMENT", "Expected one output Tensor.")
        if "outputs" not in signature.output_names:
            raise ServingError("INVALID_ARGUMENT",
                               "No regression outputs found in SignatureDef: expected output 'outputs'")
        values = self._run_examples(signature, examples)["outputs"]
        _check_batch(values, len(examples), "outputs", allow_vector=True)
        return values.reshape(len(examples))

    def _inference_signature(self, signature_name: str, method: str, kind: str) -> Signature:
        signature = self.signatures.get(signature_name)
        if signature is None:
            raise ServingError("INVALID_ARGUMENT", f"No signature was found with the name: {signature_name}")
        if signature.method_name != method:
            raise ServingError("INVALID_ARGUMENT", f"Expected {kind} signature method_name to be {method}. "
                               f"Was: {signature.method_name}")
        if len(signature.input_dtypes) != 1:
            raise ServingError("INVALID_ARGUMENT", "Expected one input Tensor.")
        return signature

    def _run_examples(self, signature: Signature, examples: list[bytes]) -> dict[str, np.ndarray]:
        if not examples:
            raise ServingError("INVALID_ARGUMENT", "Input is empty.")
        (input_key,) = signature.input_dtypes
        return self.run(signature, {input_key: np.array(examples, dtype=object)})


def _exact_inputs(signature: Signature, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """`inputs` limited to the signature's keys; INVALID_ARGUMENT if one is missing."""
    if inputs.keys() != signature.input_dtypes.keys():
        missing = [key for key in signature.input_dtypes if key not in inputs]
        if missing:
            raise ServingError("INVALID_ARGUMENT", f"Missing named input: {missing[0]}")
        inputs = {key: inputs[key] for key in signature.input_dtypes}
    return inputs


def call_signature(signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Call `signature` now, in the calling thread, on exactly its inputs; every output as numpy.

    Inputs whose dtypes and shapes the flat input specs accept skip TF's argument binding (the costly
    part of calling a small model); anything else goes through the function's own checks and errors.
    """
    flat = signature.flat_inputs
    function = signature.function
    try:
        if flat is not None and tf_fastcall.accepts(flat, inputs):
            outputs = tf_fastcall.call(function, flat, inputs)
        else:
            outputs = function(**inputs)
    except tf.errors.OpError as error:
        raise from_code_number(error.error_code, error.message) from None
    except (TypeError, ValueError) as error:
        raise ServingError("INVALID_ARGUMENT", _mismatch_message(signature, inputs, error)) from None
    return {key: value.numpy() for key, value in outputs.items()}


def _signature(key: str, function: Any, signature_def: Any) -> Signature:
    specs = function.structured_input_signature[1]
    input_shapes = {k: specs[k].shape if k in specs else tf.TensorShape(None) for k in signature_def.inputs}
    return Signature(
        name=key,
        method_name=signature_def.method_name,
        function=function,
        input_dtypes={k: types_pb2.DataType.Name(info.dtype) for k, info in signature_def.inputs.items()},
        input_shapes=input_shapes,
        output_names=tuple(signature_def.outputs),
        flat_inputs=tf_fastcall.flat_specs(function, input_shapes),
    )


def _zeros(shape: Any, dtype_name: str) -> np.ndarray:
    dims = [] if shape.rank is None else [1 if d is None else d for d in shape.as_list()]
    dtype = tf.dtypes.as_dtype(types_pb2.DataType.Value(dtype_name))
    if dtype == tf.string:
        return np.full(dims, b"", dtype=object)
    return np.zeros(dims, dtype=dtype.as_numpy_dtype)


def _mismatch_message(signature: Signature, inputs: Mapping[str, np.ndarray], error: Exception) -> str:
    """A readable message for inputs the signature's specs refuse (shape or dtype)."""
    for key, value in inputs.items():
        expected = signature.input_shapes[key]
        shape = np.shape(value)
        if not expected.is_compatible_with(shape):
            want = ("unknown" if expected.rank is None
                    else [-1 if d is None else d for d in expected.as_list()])
            return (f"Input {key} of signature {signature.name} has shape {list(shape)}, "
                    f"which is not compatible with the signature's shape {want}")
    return str(error).split("\n", 1)[0]


def _check_batch(tensor: np.ndarray, batch: int, name: str, allow_vector: bool) -> None:
    if allow_vector:
        ok_rank = tensor.ndim == 1 or (tensor.ndim == 2 and tensor.shape[1] == 1)
    else:
        ok_rank = tensor.ndim == 2
    if not ok_rank:
        expected = "[batch_size] or [batch_size, 1]" if allow_vector else "[batch_size num_classes]"
        raise ServingError("INVALID_ARGUMENT",
                           f"Expected {name} Tensor shape: {expected} but got {list(tensor.shape)}")
    if tensor.shape[0] != batch:
        raise ServingError("INVALID_ARGUMENT",
                           f"Input batch size did not match output batch size: {batch} vs. {tensor.shape[0]}")
