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

import hashlib
import io
import json
import os
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any

from pipeline.formats.errors import FormatError
from pipeline.formats.graph_model import FrozenGraph, GraphModel, to_graph_model
from pipeline.state import remove_leftovers, staged_dir

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


MAX_PUBLISHED = 16
"""Copies `publish_for_browser` keeps in its folder; the least recently published go first."""
PUBLISHED_RECORD = "published.json"
"""Inside each copy: the version folder it was copied from and that model's file fingerprint."""


def published_key(version_path: Path | str) -> str:
    """The folder name of `version_path`'s copy: a short hash of its absolute path, so two model
    folders that both have a `linear_model/3` never share (or overwrite) a copy."""
    return hashlib.sha1(str(Path(version_path).resolve()).encode()).hexdigest()[:12]


def publish_for_browser(version_path: Path | str, publish_dir: Path | str,
                        url_prefix: str = "app/static/models", keep: int = MAX_PUBLISHED) -> str:
    """Copy a version's TF.js model to `<publish_dir>/<key>/` (`published_key`); return its URL,
    `<url_prefix>/<key>/model.json`.

    Streamlit serves `<app folder>/static/` at `app/static/` when `server.enableStaticServing` is
    on; with `publish_dir` = `<app folder>/static/models` the default URL is relative to the
    dashboard's root, so it works behind a `baseUrlPath` too. The copy is made when missing or when
    the version's TF.js files changed since (replaced whole), else reused. Each publish also prunes
    the folder: a copy whose version folder or TF.js model is gone or changed is deleted, and so
    are the least recently published beyond `keep`, so the folder never grows without bound.
    Raises FormatError if the version has no TF.js model.
    """
    path = Path(version_path).resolve()
    files = model_files(path)
    folder = Path(publish_dir)
    key = published_key(path)
    target = folder / key
    record = {"source": str(path), "fingerprint": _fingerprint(files)}
    folder.mkdir(parents=True, exist_ok=True)
    if _read_record(target) != record:
        with staged_dir(target) as staging:
            for file in files:
                shutil.copyfile(file, staging / file.name)
            (staging / PUBLISHED_RECORD).write_text(json.dumps(record))
    now = time.time_ns()  # exact, unlike the file system's coarse clock: the newest for pruning
    os.utime(target / PUBLISHED_RECORD, ns=(now, now))
    prune_published(folder, keep=keep, keep_key=key)
    return f"{url_prefix.rstrip('/')}/{key}/{MODEL_JSON}"


def prune_published(publish_dir: Path | str, keep: int = MAX_PUBLISHED,
                    keep_key: str | None = None) -> list[str]:
    """Delete the copies in `publish_dir` whose version's TF.js model is gone or changed since they
    were made (or that have no readable record), then the least recently published beyond `keep`
    (never `keep_key`); the keys deleted."""
    folder = Path(publish_dir)
    if not folder.is_dir():
        return []
    removed: list[str] = []
    current: list[tuple[int, str]] = []
    for child in folder.iterdir():
        if child.name.startswith(".") or not child.is_dir() or child.name == keep_key:
            continue  # a copy being written (staged_dir's hidden folder), not ours, or just published
        record = _read_record(child)
        fresh = record is not None and _source_fingerprint(record.get("source")) == record.get("fingerprint")
        if not fresh:
            removed.append(child.name)
        else:
            current.append(((child / PUBLISHED_RECORD).stat().st_mtime_ns, child.name))
    current.sort(reverse=True)
    removed += [name for _, name in current[max(0, keep - (keep_key is not None)):]]
    for name in removed:
        shutil.rmtree(folder / name, ignore_errors=True)
        remove_leftovers(folder, name)
    return sorted(removed)


def _fingerprint(files: list[Path]) -> list[list]:
    """What identifies this export of a TF.js model: each file's name, size, mtime and inode (an
    export writes a new folder, so every one changes)."""
    stats = [(file.name, file.stat()) for file in files]
    return [[name, st.st_size, st.st_mtime_ns, st.st_ino] for name, st in stats]


def _source_fingerprint(source: object) -> list[list] | None:
    """The fingerprint of the TF.js model in version folder `source` now; None if it is gone."""
    if not isinstance(source, str):
        return None
    try:
        return _fingerprint(model_files(source))
    except (FormatError, OSError):
        return None


def _read_record(copy: Path) -> dict | None:
    try:
        record = json.loads((copy / PUBLISHED_RECORD).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def zip_tfjs(version_path: Path | str) -> bytes:
    """A zip of the TF.js model (`<name>-<version>-tfjs/model.json` + shards), for a download button."""
    path = Path(version_path)
    folder = f"{path.parent.name}-{path.name}-tfjs"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in model_files(path):
            archive.write(file, f"{folder}/{file.name}")
    return buffer.getvalue()
