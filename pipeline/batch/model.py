"""Which version scores a batch, and how each Spark Python worker runs it.

The driver resolves a `ScoringSpec` once (version folder, runtime, signature tensor names, feature
count) from the SavedModel's protos, without loading the graph, so a wrong path or version fails in
a second with one message, before Spark starts. Executors receive only that small spec; each Python
worker loads the model on first use and keeps it in a module-level cache keyed by version path and
runtime, so a worker that scores a thousand Arrow batches loads the model once (Spark reuses its
Python workers between tasks by default).

Runtimes: the SavedModel's `serving_default` signature through `tf.saved_model.load` (what TF
Serving runs), or LiteRT for `<version>/model.tflite` when that file exists and `ai_edge_litert`
imports (`runtime="auto"`); `runtime="savedmodel"` or `"litert"` forces one.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.batch.errors import BatchError
from pipeline.model_dir import ModelDirError, read_signature, version_dirs

TFLITE_FILE = "model.tflite"
RUNTIMES = ("auto", "savedmodel", "litert")
_NUMPY_DTYPES = {"DT_FLOAT": "float32", "DT_DOUBLE": "float64"}


@dataclass(frozen=True)
class ScoringSpec:
    """Everything a worker needs to score rows with one version; small and picklable."""

    version: int
    version_path: str
    runtime: str
    """`savedmodel` or `litert` (never `auto`: the driver decides once for every worker)."""
    input_name: str
    output_name: str
    dtype: str
    """numpy dtype name of the signature input, `float32` or `float64`."""
    n_features: int
    output_width: int
    """1 for one number per row (`[-1]` or `[-1, 1]` outputs), else the width of each row's output."""
    signature: str = "serving_default"
    features: tuple[str, ...] = field(default=())
    """Input columns fed to the model, in order; set by the job once the input is read."""


def choose_version(base_path: Path | str, version: int | None = None) -> tuple[int, Path]:
    """The version to score with: `version` if given, else the newest, as (number, folder).

    Raises BatchError naming the base path and the versions that exist when there is no such
    version, so a typo in `--version` or `--model-base-path` is one readable line."""
    base = Path(base_path)
    if not base.is_dir():
        raise BatchError(f"model base path {str(base)!r} does not exist or is not a folder "
                         "(it should hold version folders 1/, 2/, ...; train and export one first)")
    versions = version_dirs(base)
    if not versions:
        raise BatchError(f"no versions under {str(base)!r}: expected folders named 1/, 2/, ...")
    if version is None:
        newest = max(versions)
        return newest, versions[newest]
    if version not in versions:
        available = ", ".join(str(v) for v in versions)
        raise BatchError(f"version {version} not found under {str(base)!r}; available: {available}")
    return version, versions[version]


def litert_available() -> bool:
    """True when LiteRT's interpreter can be imported here (it is an optional dependency)."""
    return importlib.util.find_spec("ai_edge_litert") is not None


def resolve_model(base_path: Path | str, version: int | None = None, runtime: str = "auto",
                  signature: str = "serving_default") -> ScoringSpec:
    """Resolve the version, runtime and signature of a batch job on the driver.

    The signature must take one float input of shape `[-1, k]` with a known `k` (the feature
    count) and give one output; anything else is a BatchError, as is `runtime="litert"` without
    a `model.tflite` in the version folder or without `ai_edge_litert` installed."""
    if runtime not in RUNTIMES:
        raise BatchError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    number, path = choose_version(base_path, version)
    try:
        info = read_signature(path, signature)
    except ModelDirError as error:
        raise BatchError(f"version {number} cannot be scored: {error.message}") from error
    if len(info.inputs) != 1 or len(info.outputs) != 1:
        raise BatchError(f"signature {signature!r} of version {number} has inputs "
                         f"{sorted(info.inputs)} and outputs {sorted(info.outputs)}; batch scoring "
                         "needs exactly one of each")
    (input_name, tensor_in), = info.inputs.items()
    (output_name, tensor_out), = info.outputs.items()
    if tensor_in.dtype not in _NUMPY_DTYPES:
        raise BatchError(f"input {input_name!r} of version {number} is {tensor_in.dtype}; batch "
                         "scoring feeds DT_FLOAT or DT_DOUBLE")
    if tensor_in.shape is None or len(tensor_in.shape) != 2 or tensor_in.shape[1] < 1:
        raise BatchError(f"input {input_name!r} of version {number} has shape {tensor_in.shape}; "
                         "batch scoring needs [-1, k] with a known number of features k")
    shape_out = tensor_out.shape
    width = shape_out[1] if shape_out is not None and len(shape_out) == 2 and shape_out[1] > 1 else 1
    return ScoringSpec(
        version=number, version_path=str(path.resolve()), runtime=_pick_runtime(runtime, path),
        input_name=input_name, output_name=output_name, dtype=_NUMPY_DTYPES[tensor_in.dtype],
        n_features=tensor_in.shape[1], output_width=width, signature=signature,
    )


def _pick_runtime(runtime: str, version_path: Path) -> str:
    has_tflite = (version_path / TFLITE_FILE).is_file()
    if runtime == "litert":
        if not has_tflite:
            raise BatchError(f"runtime litert needs {version_path / TFLITE_FILE}, which does not exist")
        if not litert_available():
            raise BatchError("runtime litert needs the ai-edge-litert package, which is not installed")
        return "litert"
    if runtime == "auto" and has_tflite and litert_available():
        return "litert"
    return "savedmodel"


# ---- worker side -------------------------------------------------------------------------------

Predictor = Callable[[np.ndarray], np.ndarray]
_PREDICTORS: dict[tuple[str, str, str], Predictor] = {}
_LOCK = threading.Lock()
load_count = 0
"""How many models this process has loaded; the once-per-worker contract is tested on it."""


def predictor_for(spec: ScoringSpec) -> Predictor:
    """The cached predict function of `spec`'s version in this process, loading it on first use."""
    global load_count
    key = (spec.version_path, spec.runtime, spec.signature)
    with _LOCK:
        if key not in _PREDICTORS:
            loader = _load_litert if spec.runtime == "litert" else _load_savedmodel
            _PREDICTORS[key] = loader(spec)
            load_count += 1
        return _PREDICTORS[key]


def _load_savedmodel(spec: ScoringSpec) -> Predictor:
    from pipeline.tf_env import tensorflow

    tf = tensorflow()
    loaded = tf.saved_model.load(spec.version_path)
    function = loaded.signatures[spec.signature]
    lock = threading.Lock()

    def predict(x: np.ndarray) -> np.ndarray:
        with lock:  # one call at a time per worker; `loaded` stays referenced by this closure
            result = function(**{spec.input_name: tf.constant(x)})[spec.output_name]
        _ = loaded
        return result.numpy()

    return predict


def _load_litert(spec: ScoringSpec) -> Predictor:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(Path(spec.version_path) / TFLITE_FILE))
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    lock = threading.Lock()
    allocated: list[tuple[int, ...]] = [()]

    def predict(x: np.ndarray) -> np.ndarray:
        with lock:
            if allocated[0] != x.shape:  # resize only when the Arrow batch size changes
                interpreter.resize_tensor_input(input_index, list(x.shape), strict=False)
                interpreter.allocate_tensors()
                allocated[0] = x.shape
            interpreter.set_tensor(input_index, x)
            interpreter.invoke()
            return interpreter.get_tensor(output_index).copy()

    return predict


def score_batches(spec: ScoringSpec, batches: Iterator[object]) -> Iterator[object]:
    """`mapInPandas` body: add `prediction` and `version` to every Arrow batch of valid rows.

    Rows arrive already validated (numeric, finite, complete), so every row in gets a prediction
    out; a batch whose model output has the wrong row count raises instead of misaligning."""
    predict = predictor_for(spec)
    for batch in batches:
        x = batch[list(spec.features)].to_numpy(dtype=spec.dtype)
        y = np.asarray(predict(x))
        if y.shape[0] != len(batch):
            raise RuntimeError(f"version {spec.version} returned {y.shape[0]} rows for {len(batch)}")
        if spec.output_width == 1:
            batch["prediction"] = y.reshape(len(batch), -1)[:, 0].astype("float64")
        else:
            batch["prediction"] = list(y.reshape(len(batch), -1).astype("float64"))
        batch["version"] = np.int64(spec.version)
        yield batch
