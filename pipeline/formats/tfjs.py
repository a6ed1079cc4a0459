"""TensorFlow.js export of a version: `<version>/tfjs/model.json` + `group1-shard*.bin`.

The official `tensorflowjs` pip converter cannot be installed beside TF 2.21 (its dependency
`tensorflow-decision-forests` pins TF 2.19), so this module does what its SavedModel path does
for our models: load the version, freeze its `serving_default` signature
(`convert_variables_to_constants_v2`) and hand the graph to `graph_model.to_graph_model`, which
writes the documented graph-model layout and refuses unsupported ops by name.

Where the files go: inside the version folder, in `tfjs/`. TF Serving (and our server) read only
numeric children of the base path and, inside a version, only the SavedModel's own files
(`saved_model.pb`, `variables/`, `assets/`, `assets.extra/`; `model.tflite` with
`--prefer_tflite_model`), so a `tfjs/` folder is ignored by every loader, and deleting or renaming
a version carries its TF.js model along. The folder is written to a hidden sibling and renamed into
place: a failed export leaves the previous `tfjs/` (or none), never half a model, and never touches
the SavedModel.
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

from pipeline.formats.errors import FormatError
from pipeline.formats.graph_model import FrozenGraph, GraphModel, to_graph_model
from pipeline.state import staged_dir

TFJS_DIR = "tfjs"
MODEL_JSON = "model.json"
SIGNATURE = "serving_default"


def tfjs_dir(version_path: Path | str) -> Path:
    """Where a version's TF.js graph model lives (whether or not it has been exported)."""
    return Path(version_path) / TFJS_DIR


def _tensor_info(tensor: Any, json_format: Any, types_pb2: Any) -> dict[str, Any]:
    return {
        "name": tensor.name,
        "dtype": types_pb2.DataType.Name(tensor.dtype.as_datatype_enum),
        "tensorShape": json_format.MessageToDict(tensor.shape.as_proto()),
    }


def freeze_signature(version_path: Path | str, signature: str = SIGNATURE) -> FrozenGraph:
    """Load a version and fold its variables into constants in `signature`'s graph.

    Raises FormatError if the version has no SavedModel, no such signature, or cannot be frozen.
    """
    from pipeline.model_dir import ModelDirError, read_meta_graph
    from pipeline.tf_env import tensorflow

    path = Path(version_path)
    try:
        read_meta_graph(path)
    except ModelDirError as error:
        raise FormatError(f"TF.js export of {path}: {error.message}") from error
    tf = tensorflow()
    from google.protobuf import json_format
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    loaded = tf.saved_model.load(str(path))
    if signature not in loaded.signatures:
        raise FormatError(f"TF.js export of {path}: the SavedModel has no signature '{signature}'")
    function = loaded.signatures[signature]
    try:
        frozen = convert_variables_to_constants_v2(function)
    except Exception as error:  # TensorFlow raises many types here; the user needs the text
        raise FormatError(
            f"TF.js export could not freeze signature '{signature}' of {path}: {error}") from error
    # A signature's inputs and outputs are flat dicts; TensorFlow flattens a dict in key order.
    input_keys = sorted(function.structured_input_signature[1])
    output_keys = sorted(function.structured_outputs)
    if len(input_keys) != len(frozen.inputs) or len(output_keys) != len(frozen.outputs):
        raise FormatError(f"TF.js export of {path}: the frozen '{signature}' graph lost inputs or outputs")
    graph_def = json_format.MessageToDict(frozen.graph.as_graph_def())
    def infos(keys: list[str], tensors: list[Any]) -> dict[str, dict[str, Any]]:
        return {k: _tensor_info(t, json_format, types_pb2) for k, t in zip(keys, tensors, strict=True)}

    return FrozenGraph(
        nodes=graph_def.get("node", []),
        inputs=infos(input_keys, frozen.inputs),
        outputs=infos(output_keys, frozen.outputs),
        generated_by=tf.__version__,
        versions=graph_def.get("versions", {}),
    )


def write_graph_model(model: GraphModel, target: Path) -> Path:
    """Write `model.json` and the shards as the folder `target`, replacing it whole or not at all."""
    with staged_dir(target) as staging:
        (staging / MODEL_JSON).write_text(json.dumps(model.model_json, separators=(",", ":")))
        for name, data in model.shards.items():
            (staging / name).write_bytes(data)
    return target


def export_tfjs(version_path: Path | str) -> Path:
    """Convert a version's `serving_default` to a TF.js graph model in `<version>/tfjs/`; return it.

    Raises FormatError (naming the op and node for an unsupported op); on any failure the version
    folder is as it was before the call.
    """
    path = Path(version_path)
    model = to_graph_model(freeze_signature(path))
    return write_graph_model(model, tfjs_dir(path))


def model_files(version_path: Path | str) -> list[Path]:
    """`model.json` and its shards, in manifest order; FormatError if the version has no TF.js model."""
    folder = tfjs_dir(version_path)
    manifest = folder / MODEL_JSON
    if not manifest.is_file():
        raise FormatError(f"{Path(version_path)} has no TF.js model yet: convert it with "
                          f"`python -m pipeline.formats --model-base-path {Path(version_path).parent} "
                          f"--version {Path(version_path).name}`")
    try:
        groups = json.loads(manifest.read_text())["weightsManifest"]
        shards = [folder / p for group in groups for p in group["paths"]]
    except (ValueError, KeyError, TypeError) as error:
        raise FormatError(f"{manifest} is not a TF.js graph model: {error}") from error
    missing = [p.name for p in shards if not p.is_file()]
    if missing:
        raise FormatError(f"{folder} is missing weight shard(s) {', '.join(missing)}")
    return [manifest, *shards]


def publish_for_browser(
    version_path: Path | str, static_dir: Path | str, url_prefix: str = "app/static"
) -> str:
    """Copy a version's TF.js model to `<static_dir>/models/<name>/<version>/`; return its URL.

    Streamlit serves `<app folder>/static/` at `app/static/` when `server.enableStaticServing` is
    on; the returned URL (`app/static/models/<name>/<version>/model.json`) is relative to the
    dashboard's root, so it works behind a `baseUrlPath` too. Re-publishing replaces the copy whole.
    """
    path = Path(version_path)
    files = model_files(path)
    target = Path(static_dir) / "models" / path.parent.name / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    with staged_dir(target) as staging:
        for file in files:
            shutil.copyfile(file, staging / file.name)
    return f"{url_prefix.rstrip('/')}/models/{path.parent.name}/{path.name}/{MODEL_JSON}"


def zip_tfjs(version_path: Path | str) -> bytes:
    """A zip of the TF.js model (`<name>-<version>-tfjs/model.json` + shards), for a download button."""
    path = Path(version_path)
    folder = f"{path.parent.name}-{path.name}-tfjs"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in model_files(path):
            archive.write(file, f"{folder}/{file.name}")
    return buffer.getvalue()
