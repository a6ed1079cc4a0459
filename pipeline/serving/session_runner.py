"""A SavedModel's `serve` MetaGraph in its own TensorFlow Session, run the way TF Serving runs it.

TF Serving loads a version with `LoadSavedModel` (the MetaGraph into a fresh graph, variables
restored, init ops run, one Session per version) and answers each request by feeding the request's
tensors to the SignatureDef's input tensor names and fetching its output tensor names. Nothing checks
input shapes against the signature: only the graph's own ops refuse what they cannot compute. This
module does the same with `tf.compat.v1.saved_model.loader.load` and one session callable per
signature (`session_callable.make_callable`): TF1 graphs (ParseExample, reference variables whose
state persists across calls) and TF2/Keras exports all load, and a feed of any shape reaches the graph.
Resource variables the MetaGraph's restore op leaves uninitialised (a second handle of one TF2
variable) are then given their checkpoint value through the SavedModel's object graph.

A `SessionModel` is safe to call from many threads at once (TensorFlow sessions are).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from pipeline.model_dir import SERVE_TAG
from pipeline.serving import session_callable, storage
from pipeline.serving.errors import InvalidArgument, Unknown, from_code_number

log = logging.getLogger(__name__)

RunFunction = Callable[..., dict[str, np.ndarray]]
"""Runs one signature: `run(inputs, timeout=None)`, {input key: array} -> {output key: array};
`timeout` is the seconds the call may take (None: no limit), past which it stops with
DEADLINE_EXCEEDED."""

MAX_CALLABLES_PER_SIGNATURE = 64


def timeout_ms(seconds: float | None) -> int | None:
    """The `RunOptions.timeout_in_ms` for a call that may take `seconds`: rounded up to two
    significant digits past 100 ms (so a signature needs few callables), at least 1 ms; None: none."""
    if seconds is None:
        return None
    ms = max(1, math.ceil(seconds * 1000))
    if ms >= 100:
        step = 10 ** (len(str(ms)) - 2)
        ms = -(-ms // step) * step
    return ms

_LOAD_LOCK = threading.Lock()  # the v1 loader touches process-wide graph defaults


class SessionModel:
    """One version's `serve` MetaGraph loaded into its own Session (see the module docstring)."""

    def __init__(self, path: storage.StoragePath, tags: Sequence[str] = (SERVE_TAG,),
                 intra_op_threads: int = 0, inter_op_threads: int = 0) -> None:
        """Load the MetaGraph tagged `tags` from `path` or raise ServingError with TF's canonical code
        and message. Thread counts of 0 let TensorFlow choose (all cores)."""
        import tensorflow as tf

        self.path = path
        self._graph = tf.Graph()
        config = tf.compat.v1.ConfigProto(allow_soft_placement=True,
                                          intra_op_parallelism_threads=intra_op_threads,
                                          inter_op_parallelism_threads=inter_op_threads)
        self._session = tf.compat.v1.Session(graph=self._graph, config=config)
        try:
            with _LOAD_LOCK, self._graph.as_default(), _quiet_deprecation(tf):
                self.meta_graph = tf.compat.v1.saved_model.loader.load(self._session, list(tags), str(path))
                _restore_unrestored_variables(tf, self._session, self.meta_graph, path)
        except tf.errors.OpError as error:
            self.close()
            raise from_code_number(error.error_code, error.message) from None
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            self.close()
            raise Unknown(f"Failed to load SavedModel at {path}: {error}") from error
        self._graph.finalize()  # nothing may add ops later: concurrent runs stay safe

    def runner(self, key: str) -> RunFunction:
        """The function running SignatureDef `key`: feeds its inputs' tensor names, fetches its outputs'.
        A signature with sparse or composite tensors (no plain tensor name) answers INVALID_ARGUMENT."""
        signature_def = self.meta_graph.signature_def[key]
        input_keys = tuple(sorted(signature_def.inputs))
        output_keys = tuple(sorted(signature_def.outputs))
        unnamed = [key for key, info in (*signature_def.inputs.items(), *signature_def.outputs.items())
                   if info.WhichOneof("encoding") != "name"]
        if unnamed:
            return _refuse(f"Tensor {unnamed[0]} of the signature is sparse or composite; "
                           "only dense tensors are served")
        feeds = [signature_def.inputs[k].name for k in input_keys]
        fetches = [signature_def.outputs[k].name for k in output_keys]
        op_error = _op_error_type()
        try:
            untimed = session_callable.make_callable(self._session, feeds, fetches)
        except op_error as error:  # e.g. `__saved_model_init_op`, whose "output" is an operation
            return _refuse(_without_stack(error.message))
        timed: dict[int, session_callable.Runner] = {}  # one callable per RunOptions.timeout_in_ms
        lock = threading.Lock()

        def callable_for(limit_ms: int) -> session_callable.Runner:
            with lock:
                call = timed.get(limit_ms)
                if call is None:
                    if len(timed) >= MAX_CALLABLES_PER_SIGNATURE:
                        timed.clear()  # callables in use stay alive with their callers
                    call = timed[limit_ms] = session_callable.make_callable(
                        self._session, feeds, fetches, timeout_ms=limit_ms)
                return call

        def run(inputs: Mapping[str, np.ndarray], timeout: float | None = None) -> dict[str, np.ndarray]:
            limit_ms = timeout_ms(timeout)
            call = untimed if limit_ms is None else (timed.get(limit_ms) or callable_for(limit_ms))
            try:
                values = call(*[inputs[k] for k in input_keys])
            except op_error as error:
                raise from_code_number(error.error_code, _without_stack(error.message)) from None
            except (TypeError, ValueError) as error:  # e.g. a value numpy cannot turn into a tensor
                raise InvalidArgument(str(error).split("\n", 1)[0]) from None
            return dict(zip(output_keys, values, strict=True))

        return run

    def close(self) -> None:
        """Close the session and drop it with its graph, so that their memory (variables, constants,
        callables) goes now rather than whenever the garbage collector reaches them. The runners
        made earlier must not be called afterwards."""
        session, self._session = self._session, None
        self._graph = None
        if session is not None:
            session.close()
            session.__del__()  # TF_DeleteSession now: the memory must not wait for a reference cycle


def _restore_unrestored_variables(tf: Any, session: Any, meta_graph: Any, path: storage.StoragePath) -> None:
    """Give a value to resource variables the SavedModel's restore op left uninitialised.

    TF2 exports can hold two handles for one variable object: the one the signature functions read
    and the one the saver restores (a Keras 3 model tracked inside a `tf.Module`, for instance).
    `tf.saved_model.load` binds both through the object graph; a Session sees two resources. Each
    unrestored handle whose `shared_name` is a variable of the object graph is assigned that
    variable's checkpoint value, so the functions read what the export saved. Handles with no such
    variable (unused leftovers) stay as they are.
    """
    graph = session.graph
    handles = [op for op in graph.get_operations() if op.type == "VarHandleOp"]
    if not handles or not meta_graph.HasField("object_graph_def"):
        return
    flags = session.run([tf.raw_ops.VarIsInitializedOp(resource=op.outputs[0]) for op in handles])
    missing = {op.get_attr("shared_name").decode(): op
               for op, ok in zip(handles, flags, strict=True) if not ok}
    keys = _variable_checkpoint_keys(meta_graph.object_graph_def)
    prefix = str(storage.join(path, "variables", "variables"))
    try:
        reader = tf.train.load_checkpoint(prefix)
    except (ValueError, tf.errors.OpError):
        return
    assigns = []
    for name, op in missing.items():
        key = keys.get(name)
        if key is None or not reader.has_tensor(key):
            continue
        dtype = op.get_attr("dtype")
        value = tf.raw_ops.RestoreV2(prefix=prefix, tensor_names=[key], shape_and_slices=[""],
                                     dtypes=[dtype])[0]
        assigns.append(tf.raw_ops.AssignVariableOp(resource=op.outputs[0], value=value))
    if assigns:
        session.run(assigns)
        log.info("Restored %d variable(s) of %s that the SavedModel's restore op left uninitialised",
                 len(assigns), path)


def _variable_checkpoint_keys(object_graph: Any) -> dict[str, str]:
    """{SavedVariable name: its checkpoint key}, the key built from the first path to the variable
    in the object graph, as TensorFlow's object-based checkpoints name them."""
    paths: dict[int, list[str]] = {0: []}
    queue = [0]
    while queue:
        node_id = queue.pop(0)
        for child in object_graph.nodes[node_id].children:
            if child.node_id not in paths:
                paths[child.node_id] = [*paths[node_id], _escape(child.local_name)]
                queue.append(child.node_id)
    return {node.variable.name: "/".join(paths[i]) + "/.ATTRIBUTES/VARIABLE_VALUE"
            for i, node in enumerate(object_graph.nodes)
            if node.WhichOneof("kind") == "variable" and i in paths}


def _escape(local_name: str) -> str:
    return local_name.replace(".", "..").replace("/", ".S")


def _refuse(message: str) -> RunFunction:
    def run(inputs: Mapping[str, np.ndarray], timeout: float | None = None) -> dict[str, np.ndarray]:
        raise InvalidArgument(message)

    return run


def _op_error_type() -> type[Exception]:
    import tensorflow as tf

    return tf.errors.OpError


def _without_stack(message: str) -> str:
    """TF's status text without the Python stack Session errors append for ops built in-process."""
    return message.split("\n\nOriginal stack trace for", 1)[0].split("\n\nErrors may have originated", 1)[0]


class _quiet_deprecation:
    """Silence the v1 loader's one deprecation warning: TF Serving loads exactly this way."""

    def __init__(self, tf: Any) -> None:
        self._logger = tf.get_logger()
        self._level = 0

    def __enter__(self) -> None:
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self._logger.setLevel(self._level)
