"""TensorFlow's and TF Serving's protos as message classes, without importing `tensorflow`.

The generated modules cannot be imported cheaply: `tensorflow_serving.apis.predict_pb2` imports
`tensorflow.core.framework.tensor_pb2`, and importing any `tensorflow.*` module first runs
`tensorflow/__init__.py` (about 3 s, several hundred MB, C++ start-up lines on stderr). A dashboard
that sends one gRPC request or writes one warm-up file should not pay that, and it must not play
tricks with `sys.modules` either: in a multi-session Streamlit server another thread may import
TensorFlow at any moment.

So this module never imports those packages. Each generated `*_pb2.py` holds its `.proto` file as
a serialized `FileDescriptorProto`, the bytes literal passed to `AddSerializedFile`. The files are
found in the installed packages' folders (`importlib.util.find_spec` of the top-level package,
which does not run it), read with `ast` (no code runs), and added, dependencies first (the
`_pb2` modules each one imports), to a private `DescriptorPool`; `message_factory.GetMessageClass`
makes the classes. Nothing in `sys.modules` changes, and the classes are not the generated
modules' classes: TensorFlow imported later in the same process works as usual and keeps its own.
Messages cross between the two sets as bytes (`SerializeToString` / `FromString`); field access
(`proto.dtype`, `proto.float_val`) is the same on both.

The fence: the layout of generated code is not a protobuf API. If reading it fails (a package
missing, a new protoc), the first call logs one warning and every class comes from the generated
modules instead, TensorFlow included (seconds, once). `tests/unit/test_tf_protos.py` holds both
paths to their contract.

Shared leaf: the dashboard's gRPC client and warm-up writer, and the gRPC front end's tensor
reader (for the `DataType` enum) use it.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import logging
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ROOTS = (
    "tensorflow.core.framework.types_pb2",
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.prediction_service_pb2",
    "tensorflow_serving.apis.model_service_pb2",
    "tensorflow_serving.apis.prediction_log_pb2",
    "tensorflow.core.protobuf.saved_model_pb2",
)
"""The generated modules whose messages (and their dependencies') this module offers, cheapest
first: a name is looked up in the files loaded so far, and the next root is loaded only on a miss
(the `DataType` enum costs one small file, a `PredictRequest` a handful, the gRPC services and a
`SavedModel` about fifty)."""

PRIVATE_POOL = "a private descriptor pool (no TensorFlow import)"
GENERATED_MODULES = "the generated modules (TensorFlow imported)"


class ProtoSourceError(Exception):
    """The generated code could not be read as expected (the fence's trigger)."""


class _Protos:
    """The loaded files and where the classes come from; one per process (`_PROTOS`)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.pool: Any = None
        self.source: str | None = None
        self.loaded_roots = 0
        self.loaded_modules: set[str] = set()
        self.classes: dict[str, type] = {}


_PROTOS = _Protos()


def source() -> str:
    """Where the classes come from: `PRIVATE_POOL`, or `GENERATED_MODULES` after the fallback."""
    with _PROTOS.lock:
        _pool()
        return str(_PROTOS.source)


def message_class(full_name: str) -> type:
    """The message class of `full_name` (e.g. `tensorflow.serving.PredictRequest`); KeyError if no
    root file defines it. Thread-safe; the same class for the same name."""
    with _PROTOS.lock:
        found = _PROTOS.classes.get(full_name)
        if found is None:
            from google.protobuf import message_factory

            found = message_factory.GetMessageClass(_find("FindMessageTypeByName", full_name))
            _PROTOS.classes[full_name] = found
        return found


def enum(full_name: str) -> Any:
    """The enum `full_name` (e.g. `tensorflow.DataType`) as protobuf's `EnumTypeWrapper`: `.Name(n)`,
    `.Value(name)`, `.values()` and the values as attributes (`DataType.DT_FLOAT`)."""
    from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

    with _PROTOS.lock:
        return EnumTypeWrapper(_find("FindEnumTypeByName", full_name))


def service(full_name: str) -> Any:
    """The `ServiceDescriptor` of `full_name` (e.g. `tensorflow.serving.PredictionService`): its
    `methods_by_name[...]` give each method's `input_type` and `output_type`."""
    with _PROTOS.lock:
        return _find("FindServiceByName", full_name)


def _find(finder: str, full_name: str) -> Any:
    """A descriptor from the pool, loading further roots until one defines `full_name`."""
    while True:
        try:
            return getattr(_pool(), finder)(full_name)
        except KeyError:
            if _PROTOS.loaded_roots >= len(ROOTS):
                raise KeyError(f"no TensorFlow or TF Serving proto defines {full_name!r}") from None
        _load_next_root()


def _pool() -> Any:
    """The pool names are looked up in (private, or the default one after the fallback)."""
    if _PROTOS.pool is None:
        from google.protobuf import descriptor_pool

        _PROTOS.pool = descriptor_pool.DescriptorPool()
        _PROTOS.source = PRIVATE_POOL
    return _PROTOS.pool


def _load_next_root() -> None:
    root = ROOTS[_PROTOS.loaded_roots]
    if _PROTOS.source == PRIVATE_POOL:
        try:
            _add_module(root)
        except Exception as error:  # noqa: BLE001 - any failure of the fenced reading: fall back
            _fall_back(error)
    if _PROTOS.source == GENERATED_MODULES:
        importlib.import_module(root)
    _PROTOS.loaded_roots += 1


def _fall_back(error: Exception) -> None:
    """Switch to the generated modules (the default pool), once, with one warning."""
    from google.protobuf import descriptor_pool

    from pipeline.tf_env import quiet_tensorflow_logs

    log.warning("TensorFlow protos: reading the generated code failed (%s: %s); importing TensorFlow "
                "for them instead (about 3 s, once)", type(error).__name__, error)
    quiet_tensorflow_logs()
    for done in ROOTS[:_PROTOS.loaded_roots]:
        importlib.import_module(done)
    _PROTOS.pool = descriptor_pool.Default()
    _PROTOS.source = GENERATED_MODULES
    _PROTOS.classes.clear()


def _add_module(module: str) -> None:
    """Add the file of generated module `module` to the private pool, after its dependencies."""
    if module in _PROTOS.loaded_modules:
        return
    _PROTOS.loaded_modules.add(module)
    data, dependencies = _serialized_file(_module_path(module))
    for dependency in dependencies:
        _add_module(dependency)
    from google.protobuf import descriptor_pb2

    name = descriptor_pb2.FileDescriptorProto.FromString(data).name
    try:
        _PROTOS.pool.FindFileByName(name)  # another module re-exporting the same file
    except KeyError:
        _PROTOS.pool.AddSerializedFile(data)


def _module_path(module: str) -> Path:
    """The source file of `module`, found without importing it or any package above it."""
    top, *rest = module.split(".")
    folders = _package_folders(top)
    for folder in folders:
        path = Path(folder).joinpath(*rest[:-1], f"{rest[-1]}.py")
        if path.is_file():
            return path
    raise ProtoSourceError(f"{module} has no source file in {list(folders)}")


@functools.cache
def _package_folders(top: str) -> tuple[str, ...]:
    spec = importlib.util.find_spec(top)  # a top-level name: located, not imported
    if spec is None or not spec.submodule_search_locations:
        raise ProtoSourceError(f"the package {top!r} is not installed")
    return tuple(spec.submodule_search_locations)


def _serialized_file(path: Path) -> tuple[bytes, list[str]]:
    """(the serialized FileDescriptorProto, the `_pb2` modules it imports) of a generated module,
    read with `ast`, never run: both are module-level statements (`from a.b import c_pb2 as ...`,
    `DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile(b'...')`)."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    found: list[bytes] = []
    dependencies: list[str] = []
    for statement in tree.body:
        if isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
            if statement.module.endswith("_pb2"):
                dependencies.append(statement.module)  # `from x.y_pb2 import *` (a re-export)
            dependencies += [f"{statement.module}.{alias.name}" for alias in statement.names
                             if alias.name.endswith("_pb2")]
        elif isinstance(statement, ast.Assign | ast.Expr) and isinstance(statement.value, ast.Call):
            call = statement.value
            if isinstance(call.func, ast.Attribute) and call.func.attr == "AddSerializedFile":
                if len(call.args) != 1 or not isinstance(call.args[0], ast.Constant) \
                        or not isinstance(call.args[0].value, bytes):
                    raise ProtoSourceError(f"{path}: AddSerializedFile is not given a bytes literal")
                found.append(call.args[0].value)
    if len(found) != 1:
        raise ProtoSourceError(f"{path}: {len(found)} module-level AddSerializedFile calls, expected 1")
    return found[0], dependencies
