"""TensorFlow Serving's gRPC protos for clients, without TensorFlow's runtime.

`tensorflow_serving.apis.*_pb2` import `tensorflow.core.framework.tensor_pb2` and its siblings:
plain generated protobuf modules. But importing any `tensorflow.*` module first runs
`tensorflow/__init__.py`, which loads the whole runtime (about 3 s and several hundred MB, plus
C++ start-up lines on stderr). A dashboard that sends one gRPC request should not pay that.

`load()` imports the protos the client needs with a bare stand-in for the `tensorflow` package
(a module whose `__path__` is TensorFlow's folder, so only the `tensorflow/core/...` proto modules
and their empty `__init__.py` files run), then removes the stand-in. A later `import tensorflow`
in the same process runs TensorFlow's own `__init__` as usual and reuses the proto modules already
imported (the same files, so the same classes). This relies on import machinery, not on a private
API; `tests/unit/test_serving_protos.py` holds it to that contract. If it fails (a package layout
change), `load()` logs one warning and imports the protos the ordinary way, TensorFlow included.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import threading
import types

log = logging.getLogger(__name__)

MODULES = (
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.status_pb2",
    "tensorflow_serving.apis.prediction_service_pb2_grpc",
    "tensorflow_serving.apis.model_service_pb2_grpc",
    "tensorflow_serving.apis.prediction_log_pb2",
)
"""What `pipeline.client.grpc` and `pipeline.client.warmup_records` (warm-up files) use; their
imports bring in the `tensorflow.core` protos."""

_lock = threading.Lock()
_loaded: str | None = None  # "without the TensorFlow runtime" or "with the TensorFlow runtime"


def load() -> str:
    """Import `MODULES` once per process; says how: "without the TensorFlow runtime" (the
    stand-in worked, or TensorFlow was already imported) or "with the TensorFlow runtime"
    (the fallback). Thread-safe; ImportError only if the protos cannot be imported at all."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            _loaded = _load()
    return _loaded


def _load() -> str:
    if "tensorflow" in sys.modules:  # the runtime is here already: nothing to avoid
        _import_all()
        return "without the TensorFlow runtime"
    before = set(sys.modules)
    try:
        _import_with_stand_in()
    except Exception as error:  # noqa: BLE001 - any failure means: import the ordinary way
        for name in set(sys.modules) - before:  # start clean: no proto imported under the stand-in
            if name.split(".")[0] in ("tensorflow", "tensorflow_serving"):
                sys.modules.pop(name, None)
        log.warning("TensorFlow Serving protos: the runtime-free import failed (%s: %s); importing "
                    "TensorFlow for them (about 3 s, once)", type(error).__name__, error)
        _import_all()
        return "with the TensorFlow runtime"
    log.info("TensorFlow Serving protos imported without the TensorFlow runtime")
    return "without the TensorFlow runtime"


def _import_all() -> None:
    for name in MODULES:
        importlib.import_module(name)


def _import_with_stand_in() -> None:
    spec = importlib.util.find_spec("tensorflow")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the tensorflow package is not installed")
    stand_in = types.ModuleType("tensorflow", "stand-in: TensorFlow's folder, without its __init__")
    stand_in.__path__ = list(spec.submodule_search_locations)
    sys.modules["tensorflow"] = stand_in
    try:
        _import_all()
    finally:
        if sys.modules.get("tensorflow") is stand_in:
            del sys.modules["tensorflow"]
