"""One loaded version of a SavedModel: its signatures, a warm-up, and the calls that run them.

A `Servable` is immutable after `Servable.load` returns and safe to call from many threads at once
(TensorFlow concrete functions are). It never talks HTTP: callers hand it numpy arrays (predict) or
serialized `tf.Example`s (classify, regress) and get numpy arrays back, or a `ServingError` carrying
a canonical status code name and TF Serving's message text. The REST layer (and a later gRPC layer)
turn those into their wire formats.

Everything that does not depend on a request is computed once at load: the signature functions
(`tf.saved_model.load(path).signatures[name]`, never `Model.predict`), input name -> dtype name
maps, output names, input specs for shape messages, and the `SignatureDefMap` read from the
SavedModel's own `saved_model.pb` for metadata.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import json_format, text_format
from google.protobuf.message import DecodeError
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

log = logging.getLogger(__name__)

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"
SERVE_TAG = "serve"

# Canonical codes (absl::StatusCode / tensorflow.error.Code) by number, for TF runtime errors.
CODE_NAMES = {
    0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND",
    6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION",
    10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE",
    15: "DATA_LOSS", 16: "UNAUTHENTICATED",
}


class ServingError(Exception):
    """A failed serving call: `code` is a canonical code name (e.g. NOT_FOUND), `message` TF's text."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Signature:
    """A callable signature with everything request-independent precomputed."""

    name: str
    method_name: str
    function: Callable[..., Mapping[str, Any]]
    input_dtypes: Mapping[str, str]       # input key -> DataType name, e.g. "DT_FLOAT"
    input_shapes: Mapping[str, Any]       # input key -> tf.TensorShape of the signature
    output_names: tuple[str, ...]


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
    def load(cls, name: str, version: int, path: Path, warmup: bool = True) -> Servable:
        """Load `path` (a version dir); raise ServingError with a canonical code if it cannot serve."""
        started = time.perf_counter()
        signature_defs = _read_signature_defs(path)
        try:
            loaded = tf.saved_model.load(str(path), tags=[SERVE_TAG])
        except tf.errors.OpError as error:
            raise _from_tf_error(error) from None
        except (OSError, ValueError, RuntimeError) as error:
            raise ServingError("UNKNOWN", f"Failed to load SavedModel at {path}: {error}") from error
        signatures = {
            key: _signature(key, function, signature_defs[key])
            for key, function in loaded.signatures.items() if key in signature_defs
        }
        sdm = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in signature_defs.items():
            sdm.signature_def[key].CopyFrom(signature_def)
        servable = cls(name, version, path, signatures, sdm, loaded)
        if warmup:
            servable.warm_up()
        log.info("Loaded servable version {name: %s version: %d} from %s in %.2f s",
                 name, version, path, time.perf_counter() - started)
        return servable

    def warm_up(self) -> None:
        """Call each signature once with a batch of one zero/empty element, so the first real
        request does not pay for graph initialization. A failure here is not a load failure."""
        for signature in self.signatures.values():
            inputs = {key: _zeros(shape, signature.input_dtypes[key])
                      for key, shape in signature.input_shapes.items()}
            try:
                signature.function(**inputs)
            except Exception as error:  # noqa: BLE001 - any model error just means no warm-up
                log.debug("Warm-up of %s/%d signature %s skipped: %s",
                          self.name, self.version, signature.name, error)

    def predict_signature(self, signature_name: str) -> Signature:
        """The signature a predict request names, or INVALID_ARGUMENT with TF Serving's text."""
        signature = self.signatures.get(signature_name)
        if signature is None:
            raise ServingError("INVALID_ARGUMENT",
                               f'Serving signature name: "{signature_name}" not found in signature def')
        return signature

    def run(self, signature: Signature, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run `signature` on `inputs` (extra keys ignored) and return every output as numpy."""
        if inputs.keys() != signature.input_dtypes.keys():
            missing = [key for key in signature.input_dtypes if key not in inputs]
            if missing:
                raise ServingError("INVALID_ARGUMENT", f"Missing named input: {missing[0]}")
            inputs = {key: inputs[key] for key in signature.input_dtypes}
        try:
            outputs = signature.function(**inputs)
        except tf.errors.OpError as error:
            raise _from_tf_error(error) from None
        except (TypeError, ValueError) as error:
            raise ServingError("INVALID_ARGUMENT", _mismatch_message(signature, inputs, error)) from None
        return {key: value.numpy() for key, value in outputs.items()}

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

    def metadata_response(self) -> get_model_metadata_pb2.GetModelMetadataResponse:
        """GetModelMetadataResponse for this version (signature_def field), as gRPC would send it."""
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.name
        response.model_spec.version.value = self.version
        response.metadata["signature_def"].Pack(self.signature_def_map)
        return response

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


def _from_tf_error(error: tf.errors.OpError) -> ServingError:
    return ServingError(CODE_NAMES.get(error.error_code, "UNKNOWN"), clean_tf_message(error.message))


def clean_tf_message(message: str) -> str:
    """A TF runtime error text without the eager wrapper's header and `[Op:...]` suffix."""
    text = message
    if text.startswith("Graph execution error:"):
        marker = "<stack traces unavailable>\n"
        text = text.split(marker, 1)[1] if marker in text else text[len("Graph execution error:"):]
    return re.sub(r"\s*\[Op:[^\]]*\]\s*$", "", text).strip()


def _read_signature_defs(path: Path) -> dict[str, Any]:
    """The SignatureDefs of the `serve` MetaGraph, read from saved_model.pb (or .pbtxt)."""
    saved_model = saved_model_pb2.SavedModel()
    binary, text = path / "saved_model.pb", path / "saved_model.pbtxt"
    try:
        if binary.exists():
            saved_model.ParseFromString(binary.read_bytes())
        elif text.exists():
            text_format.Parse(text.read_text(), saved_model)
        else:
            raise ServingError("NOT_FOUND", "Could not find SavedModel .pb or .pbtxt at supplied export "
                               f"directory path: {path}")
    except (OSError, text_format.ParseError, DecodeError, ValueError) as error:
        raise ServingError("DATA_LOSS", f"Could not read SavedModel at {path}: {error}") from error
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ServingError("NOT_FOUND", "Could not find meta graph def matching supplied tags: "
                       f"{{ {SERVE_TAG} }}. To inspect available tag-sets in the SavedModel, please use "
                       f"the SavedModel CLI: `saved_model_cli` (path {path})")


def _signature(key: str, function: Any, signature_def: Any) -> Signature:
    specs = function.structured_input_signature[1]
    return Signature(
        name=key,
        method_name=signature_def.method_name,
        function=function,
        input_dtypes={k: types_pb2.DataType.Name(info.dtype) for k, info in signature_def.inputs.items()},
        input_shapes={k: specs[k].shape if k in specs else tf.TensorShape(None)
                      for k in signature_def.inputs},
        output_names=tuple(signature_def.outputs),
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
