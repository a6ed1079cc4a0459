"""One loaded version of a model: its signatures, its warm-up, and the calls that run them.

A `Servable` runs a version the way TensorFlow Serving does. A SavedModel's `serve` MetaGraph is
loaded into its own Session (`session_runner.py`) and each SignatureDef is resolved to tensor names
once; a request's tensors are fed by those names with no shape check of ours (only the dtype
conversion the JSON decoding does), so the graph's own ops accept or refuse them, as upstream. With
`prefer_tflite_model` and a `model.tflite` in the version folder, LiteRT runs the file instead
(`litert.py`, pooled interpreters). Before the version is returned its warm-up requests are
replayed (`warmup.py`).

It is immutable after `Servable.load` returns and safe to call from many threads at once. It never
talks HTTP or gRPC: callers hand it numpy arrays (predict) or serialized `tf.Example`s (classify,
regress) and get numpy arrays back, or a `ServingError` carrying a canonical code name and TF
Serving's message text; each front end turns those into its wire format. With batching, concurrent
calls of one signature merge into one call of the same runner.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from google.protobuf import json_format
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from pipeline.model_dir import SERVE_TAG, ModelDirError, read_meta_graph
from pipeline.serving import litert, storage, warmup
from pipeline.serving.batching import BatchQueue, BatchScheduler, Done, QueueFullError
from pipeline.serving.errors import InvalidArgument, ServingError, Unavailable, error_for
from pipeline.serving.lease import Leased
from pipeline.serving.overload import Deadline
from pipeline.serving.session_runner import RunFunction, SessionModel

log = logging.getLogger(__name__)

PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
REGRESS_METHOD = "tensorflow/serving/regress"
DEFAULT_SIGNATURE = "serving_default"


class LoadObserver(Protocol):
    """Told how loading went, e.g. `ServerMetrics` (TF Serving's load and warm-up metrics)."""

    def record_saved_model_load(self, model_path: str, ok: bool, seconds: float) -> None: ...

    def record_warmup(self, model_path: str, status: str, seconds: float) -> None: ...


@dataclass(frozen=True)
class ServableOptions:
    """How versions are loaded; the fields are the flags of the same names."""

    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    prefer_tflite_model: bool = False
    enable_signature_method_name_check: bool = False
    num_tflite_interpreters_per_pool: int = 1
    saved_model_tags: str = SERVE_TAG
    tensorflow_session_parallelism: int = 0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0

    @property
    def tags(self) -> list[str]:
        """The MetaGraph tag set to load, from the comma-separated `saved_model_tags`."""
        return [tag.strip() for tag in self.saved_model_tags.split(",") if tag.strip()] or [SERVE_TAG]

    @property
    def threads(self) -> tuple[int, int]:
        """(intra-op, inter-op) thread counts of each Session; 0 lets TensorFlow choose. As upstream,
        the specific flags win over `tensorflow_session_parallelism`."""
        shared = self.tensorflow_session_parallelism
        intra, inter = self.tensorflow_intra_op_parallelism, self.tensorflow_inter_op_parallelism
        return (intra or shared, inter or shared)

    @classmethod
    def from_flags(cls, flags: Any) -> ServableOptions:
        """The options a parsed command line asks for; flags it lacks keep their defaults."""
        defaults = cls()
        return cls(**{field.name: getattr(flags, field.name, getattr(defaults, field.name))
                      for field in dataclasses.fields(cls)})


@dataclass(frozen=True)
class Signature:
    """A callable signature with everything request-independent precomputed."""

    name: str
    method_name: str
    input_dtypes: Mapping[str, str]       # input key -> DataType name, e.g. "DT_FLOAT"
    output_names: tuple[str, ...]
    runner: RunFunction                   # {input key: array} -> {output key: array}, errors as ServingError
    batch_queue: BatchQueue | None = None  # with batching: merges concurrent calls


class Servable(Leased):
    """A loaded version. Build with `Servable.load`; then read-only and thread-safe until `close`.
    Requests hold a lease on it (`Leased`) while they use it; the manager closes it once it is
    unloaded and the last of them let go."""

    def __init__(self, name: str, version: int, path: storage.StoragePath, signatures: dict[str, Signature],
                 signature_def_map: get_model_metadata_pb2.SignatureDefMap, backend: Any = None,
                 check_method_names: bool = False) -> None:
        super().__init__()
        self._backend = backend  # the Session or LiteRT pools: alive as long as the servable
        self.name = name
        self.version = version
        self.path = path
        self.signatures = signatures
        self.signature_def_map = signature_def_map
        self.check_method_names = check_method_names
        # The metadata body without model_spec, as TF Serving prints it (Any unpacked, proto names).
        self.metadata_dict = {"signature_def": json_format.MessageToDict(
            signature_def_map, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)}

    def close(self) -> None:
        """Give back what the version holds: its Session is closed and deleted (variables, graph
        and callables with it) or its LiteRT interpreters dropped, and its signatures forgotten.
        Called once, by the manager, when no request holds the version any more."""
        backend, self._backend = self._backend, None
        self.signatures = {}
        close = getattr(backend, "close", None)
        if close is not None:
            close()

    @property
    def runtime(self) -> str:
        """"tflite" when LiteRT runs this version, else "tensorflow"."""
        return "tflite" if isinstance(self._backend, litert.LiteRTServable) else "tensorflow"

    @classmethod
    def load(cls, name: str, version: int, path: storage.StoragePath, options: ServableOptions | None = None,
             batching: BatchScheduler | None = None, observer: LoadObserver | None = None) -> Servable:
        """Load the version in `path`, replay its warm-up requests, and return it ready to serve;
        raise ServingError with a canonical code if it cannot serve (a failed warm-up included).
        `observer` is told of the SavedModel load attempt and of the warm-up replay (TF Serving's
        load and warm-up metrics). With a `batching` scheduler, concurrent `run`s of one signature
        are merged into one call."""
        options = options or ServableOptions()
        started = time.perf_counter()
        try:
            backend, signature_defs = _load_backend(path, options)
        except Exception:
            if observer is not None:
                observer.record_saved_model_load(str(path), False, time.perf_counter() - started)
            raise
        if observer is not None:
            observer.record_saved_model_load(str(path), True, time.perf_counter() - started)
        signatures = {key: Signature(
            name=key, method_name=signature_def.method_name,
            input_dtypes={k: types_pb2.DataType.Name(info.dtype) for k, info in signature_def.inputs.items()},
            output_names=tuple(signature_def.outputs), runner=backend.runner(key))
            for key, signature_def in signature_defs.items()}
        if batching is not None:
            signatures = {key: dataclasses.replace(
                signature, batch_queue=batching.queue(name, functools.partial(call_signature, signature)))
                for key, signature in signatures.items()}
        sdm = get_model_metadata_pb2.SignatureDefMap()
        for key, signature_def in signature_defs.items():
            sdm.signature_def[key].CopyFrom(signature_def)
        servable = cls(name, version, path, signatures, sdm, backend,
                       check_method_names=options.enable_signature_method_name_check)
        requests = warmup.warmup_file(path) if options.enable_model_warmup else None
        if requests is not None:
            warmup_started = time.perf_counter()
            status = "OK"
            try:
                warmup.replay(servable, requests, options.num_request_iterations_for_warmup)
            except ServingError as error:
                status = f"{error.code}: {error.message}"
                raise
            finally:
                if observer is not None:
                    observer.record_warmup(str(path), status, time.perf_counter() - warmup_started)
        log.info("Loaded servable version {name: %s version: %d} from %s (%s) in %.2f s",
                 name, version, path, servable.runtime, time.perf_counter() - started)
        return servable

    def predict_signature(self, signature_name: str) -> Signature:
        """The signature a predict request names, or INVALID_ARGUMENT with TF Serving's text."""
        signature = self.signatures.get(signature_name)
        if signature is None:
            raise InvalidArgument(f'Serving signature name: "{signature_name}" not found in signature def')
        if self.check_method_names and signature.method_name != PREDICT_METHOD:
            raise InvalidArgument(f'Expected prediction signature method_name to be {PREDICT_METHOD}. '
                               f"Was: {signature.method_name}")
        return signature

    def run(self, signature: Signature, inputs: Mapping[str, np.ndarray],
            deadline: Deadline | None = None) -> dict[str, np.ndarray]:
        """Run `signature` on `inputs` (extra keys ignored) and return every output as numpy.
        With batching, blocks until the batch holding this call has run; a full queue is UNAVAILABLE.
        A model call still running when `deadline` passes stops with DEADLINE_EXCEEDED."""
        inputs = _exact_inputs(signature, inputs)
        if signature.batch_queue is not None:
            try:
                return signature.batch_queue.submit(inputs, deadline)
            except QueueFullError as error:
                raise Unavailable(str(error)) from None
        return call_signature(signature, inputs, _remaining(deadline))

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
                raise Unavailable(str(error)) from None
            return
        try:
            outputs = call_signature(signature, inputs, _remaining(deadline))
        except Exception as error:  # noqa: BLE001 - handed to `done`, like a batched call's error
            done(None, error)
        else:
            done(outputs, None)

    def classify(self, signature_name: str, examples: list[bytes], deadline: Deadline | None = None
                 ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Classify serialized Examples: (classes [batch, n] bytes or None, scores [batch, n] or None)."""
        signature = self._inference_signature(signature_name, CLASSIFY_METHOD, "classification")
        if len(signature.output_names) not in (1, 2):
            raise InvalidArgument(f"Expected one or two output Tensors, found {len(signature.output_names)}")
        if "classes" not in signature.output_names and "scores" not in signature.output_names:
            raise InvalidArgument("Expected classification signature outputs to contain at least one of "
                               "'classes' or 'scores'")
        outputs = self._run_examples(signature, examples, deadline)
        classes, scores = outputs.get("classes"), outputs.get("scores")
        for label, tensor in (("classes", classes), ("scores", scores)):
            if tensor is not None:
                _check_batch(tensor, len(examples), label, allow_vector=False)
        if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
            raise InvalidArgument(f"Tensors class and score should match in dim[1]. Got {classes.shape[1]} "
                               f"vs. {scores.shape[1]}")
        return classes, scores

    def regress(self, signature_name: str, examples: list[bytes], deadline: Deadline | None = None
                ) -> np.ndarray:
        """Regress serialized Examples: one value per example, shape [batch]."""
        signature = self._inference_signature(signature_name, REGRESS_METHOD, "regression")
        if len(signature.output_names) != 1:
            raise InvalidArgument("Expected one output Tensor.")
        if "outputs" not in signature.output_names:
            raise InvalidArgument("No regression outputs found in SignatureDef: expected output 'outputs'")
        values = self._run_examples(signature, examples, deadline)["outputs"]
        _check_batch(values, len(examples), "outputs", allow_vector=True)
        return values.reshape(len(examples))

    def _inference_signature(self, signature_name: str, method: str, kind: str) -> Signature:
        """The classify/regress signature; its method_name is checked only when asked
        (`--enable_signature_method_name_check`), as TF Serving does."""
        signature = self.signatures.get(signature_name)
        if signature is None:
            raise InvalidArgument(f"No signature was found with the name: {signature_name}")
        if self.check_method_names and signature.method_name != method:
            raise InvalidArgument(f"Expected {kind} signature method_name to be {method}. "
                               f"Was: {signature.method_name}")
        if len(signature.input_dtypes) != 1:
            raise InvalidArgument("Expected one input Tensor.")
        return signature

    def _run_examples(self, signature: Signature, examples: list[bytes],
                      deadline: Deadline | None) -> dict[str, np.ndarray]:
        if not examples:
            raise InvalidArgument("Input is empty.")
        (input_key,) = signature.input_dtypes
        return self.run(signature, {input_key: np.array(examples, dtype=object)}, deadline)


def _load_backend(path: storage.StoragePath, options: ServableOptions) -> tuple[Any, dict[str, Any]]:
    """(the runtime, its SignatureDefs by key): LiteRT for a preferred `model.tflite`, else the
    SavedModel in a Session (the signatures read by `pipeline.model_dir`, the one SavedModel reader)."""
    local = not storage.is_uri(path)
    if options.prefer_tflite_model and local and litert.has_tflite(path):
        backend = litert.LiteRTServable(path, options.num_tflite_interpreters_per_pool)
        return backend, dict(backend.signature_defs)
    if local and options.tags == [SERVE_TAG]:  # TF Serving's wording for a missing or unreadable SavedModel
        try:
            read_meta_graph(path)
        except ModelDirError as error:
            raise error_for(error.code, error.message) from None
    session = SessionModel(path, options.tags, *options.threads)
    return session, dict(session.meta_graph.signature_def)


def _exact_inputs(signature: Signature, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
    """`inputs` limited to the signature's keys; INVALID_ARGUMENT if one is missing."""
    if inputs.keys() != signature.input_dtypes.keys():
        missing = [key for key in signature.input_dtypes if key not in inputs]
        if missing:
            raise InvalidArgument(f"Missing named input: {missing[0]}")
        inputs = {key: inputs[key] for key in signature.input_dtypes}
    return inputs


def call_signature(signature: Signature, inputs: Mapping[str, np.ndarray],
                   timeout: float | None = None) -> dict[str, np.ndarray]:
    """Call `signature` now, in the calling thread, on exactly its inputs; every output as numpy.
    A call still running after `timeout` seconds stops with DEADLINE_EXCEEDED (TensorFlow's
    `RunOptions.timeout_in_ms`). The batch queues call this too, with merged inputs."""
    return signature.runner(inputs, timeout)


def _remaining(deadline: Deadline | None) -> float | None:
    return deadline.remaining() if deadline is not None else None


def _check_batch(tensor: np.ndarray, batch: int, name: str, allow_vector: bool) -> None:
    if allow_vector:
        ok_rank = tensor.ndim == 1 or (tensor.ndim == 2 and tensor.shape[1] == 1)
    else:
        ok_rank = tensor.ndim == 2
    if not ok_rank:
        expected = "[batch_size] or [batch_size, 1]" if allow_vector else "[batch_size num_classes]"
        raise InvalidArgument(f"Expected {name} Tensor shape: {expected} but got {list(tensor.shape)}")
    if tensor.shape[0] != batch:
        raise InvalidArgument(
            f"Input batch size did not match output batch size: {batch} vs. {tensor.shape[0]}")
