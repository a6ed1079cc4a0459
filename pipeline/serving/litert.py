"""A version's `model.tflite` served with LiteRT, as `tensorflow_model_server --prefer_tflite_model`.

Signatures come from the file itself: its signature runners (files converted from a SavedModel,
like the project's own exports), else the SignatureDefs TF Lite's `signature_def_utils` stores in
the flatbuffer's `signature_defs_metadata` (mapping request keys such as `x` to tensor names such as
`tflite_input:0`, as in upstream's `saved_model_half_plus_two_tflite_with_sigdef`), else one
`serving_default` whose keys are the input and output tensor names, as TF Serving's TfLiteSession
builds it. The model runs in `pipeline.formats.tflite.LiteRTModel` (the project's one LiteRT runner),
which resizes inputs to any batch.

An interpreter is not thread-safe, so each signature owns a pool of `pool_size` runners: a call
takes one from the pool, runs it, and gives it back, so up to `pool_size` calls run in parallel and
the rest wait their turn.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tensorflow.core.protobuf import meta_graph_pb2

from pipeline.formats.errors import FormatError
from pipeline.formats.tflite import LiteRTModel, _open_interpreter
from pipeline.serving.errors import InvalidArgument
from pipeline.serving.session_runner import RunFunction

log = logging.getLogger(__name__)

TFLITE_FILE = "model.tflite"
SIGNATURE_DEFS_METADATA = b"signature_defs_metadata"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"


def has_tflite(path: Path) -> bool:
    """Whether a version folder holds a `model.tflite`."""
    return (path / TFLITE_FILE).is_file()


class LiteRTServable:
    """The signatures of one `.tflite` version: their SignatureDefs and pooled runners."""

    def __init__(self, path: Path, pool_size: int) -> None:
        """Load `path/model.tflite` `pool_size` times per signature; ServingError if LiteRT refuses it."""
        self.path = path / TFLITE_FILE
        try:
            interpreter = _open_interpreter(self.path, None)
        except FormatError as error:
            raise InvalidArgument(str(error)) from None
        runner_keys = list(interpreter.get_signature_list())
        self._uses_runner = bool(runner_keys)
        if runner_keys:  # a model converted from a SavedModel: its own signature runners
            self.signature_defs = {key: _runner_signature_def(LiteRTModel(self.path, signature=key))
                                   for key in runner_keys}
        else:  # TF1-era files: SignatureDefs in the metadata, else tensor names as keys
            self.signature_defs = (_metadata_signature_defs(self.path.read_bytes())
                                   or {DEFAULT_SIGNATURE: _tensor_signature_def(interpreter)})
        self._pools: dict[str, queue.SimpleQueue[LiteRTModel]] = {}
        for key in self.signature_defs:
            pool: queue.SimpleQueue[LiteRTModel] = queue.SimpleQueue()
            for _ in range(max(1, pool_size)):
                pool.put(LiteRTModel(self.path, signature=key) if runner_keys else LiteRTModel(self.path))
            self._pools[key] = pool

    def runner(self, key: str) -> RunFunction:
        """The pooled function running signature `key`: request keys in, output keys out."""
        signature_def = self.signature_defs[key]
        pool = self._pools[key]
        if self._uses_runner:
            feed_names = {k: k for k in signature_def.inputs}
            fetch_names = {k: k for k in signature_def.outputs}
        else:
            feed_names = {k: _tensor_name(info.name) for k, info in signature_def.inputs.items()}
            fetch_names = {k: _tensor_name(info.name) for k, info in signature_def.outputs.items()}

        def run(inputs: Mapping[str, np.ndarray], timeout: float | None = None) -> dict[str, np.ndarray]:
            # LiteRT's interpreter cannot be interrupted: `timeout` is not applied (docs/serving.md)
            model = pool.get()
            try:
                outputs = model.run({feed_names[k]: value for k, value in inputs.items()})
            except (FormatError, KeyError, ValueError) as error:
                raise InvalidArgument(str(error)) from None
            finally:
                pool.put(model)
            return {k: outputs[name] for k, name in fetch_names.items()}

        return run


def _tensor_name(name: str) -> str:
    """A SignatureDef tensor name (`y:0`) as the `.tflite` spells it (`y`)."""
    return name[:-2] if name.endswith(":0") else name


def _metadata_signature_defs(data: bytes) -> dict[str, meta_graph_pb2.SignatureDef]:
    """SignatureDefs stored in the flatbuffer's `signature_defs_metadata` ({} if none): a FlexBuffer
    map from signature key to a serialized SignatureDef, as TF Lite's signature_def_util writes it."""
    from ai_edge_litert import schema_py_generated as schema
    from flatbuffers import flexbuffers

    model = schema.Model.GetRootAsModel(data, 0)
    for index in range(model.MetadataLength()):
        metadata = model.Metadata(index)
        if metadata.Name() != SIGNATURE_DEFS_METADATA:
            continue
        blob = model.Buffers(metadata.Buffer()).DataAsNumpy().tobytes()
        found = {}
        entries = flexbuffers.GetRoot(blob).AsMap
        for key, value in zip(entries.Keys, entries.Values, strict=True):
            raw = value.AsBlob if value.IsBlob else value.AsString.encode("latin-1")
            signature_def = meta_graph_pb2.SignatureDef()
            signature_def.ParseFromString(bytes(raw))
            found[key.AsKey] = signature_def
        return found
    return {}


def _runner_signature_def(model: LiteRTModel) -> meta_graph_pb2.SignatureDef:
    runner = model._runner  # noqa: SLF001 - the project's own runner, read once at load
    signature_def = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for target, details in ((signature_def.inputs, runner.get_input_details()),
                            (signature_def.outputs, runner.get_output_details())):
        for key, detail in details.items():
            _fill(target[key], key, detail)
    return signature_def


def _tensor_signature_def(interpreter: Any) -> meta_graph_pb2.SignatureDef:
    signature_def = meta_graph_pb2.SignatureDef(method_name=PREDICT_METHOD)
    for target, details in ((signature_def.inputs, interpreter.get_input_details()),
                            (signature_def.outputs, interpreter.get_output_details())):
        for detail in details:
            _fill(target[detail["name"]], detail["name"], detail)
    return signature_def


def _fill(info: Any, name: str, detail: Mapping[str, Any]) -> None:
    """A TensorInfo for one LiteRT tensor: its name, DataType and shape (-1 for a dynamic dim)."""
    import tensorflow as tf

    info.name = name
    info.dtype = tf.dtypes.as_dtype(detail["dtype"]).as_datatype_enum
    dims = detail.get("shape_signature")
    if dims is None or len(dims) == 0:
        dims = detail.get("shape", [])
    for size in dims:
        info.tensor_shape.dim.add(size=int(size))
