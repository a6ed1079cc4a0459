"""Base paths and config files on TensorFlow's file systems, as TF Serving reads them.

TF Serving takes `--model_base_path=[/tmp/my_model | gs://...]` and reads base paths, models.config
and the other config files through TensorFlow's `Env`, so any registered scheme works. Here a path
with a scheme (`gs://bucket/m`, `ram://m`, `s3://...` when a plugin registers it) stays a string and
is read with `tf.io.gfile`; `file:///abs` and plain paths are local `Path`s, read with pathlib (no
TensorFlow import on the flag-parsing path). `pathlib.Path("gs://b/m")` would be `gs:/b/m`: never
build one from a URI.

Which schemes this TensorFlow has: `tf.io.gfile.get_registered_schemes()` (TF 2.21's pip wheel:
`file`, `ram`, `gs`; `s3://` and `hdfs://` need tensorflow-io's file systems). A scheme that is not
registered fails like a missing path, with TensorFlow's message.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.model_dir import parse_version, version_dirs

StoragePath = Path | str
"""A local `Path`, or a URI string for another TensorFlow file system."""

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def is_uri(path: StoragePath) -> bool:
    """Whether `path` names a file system other than the local one (a `scheme://` string)."""
    return isinstance(path, str) and _SCHEME.match(path) is not None


def storage_path(text: str) -> StoragePath:
    """`text` as a path to serve from: `file://` and plain paths as `Path`, other URIs as strings."""
    match = _SCHEME.match(text)
    if match is None:
        return Path(text)
    if match.group(1).lower() == "file":
        return Path(text[len(match.group(0)):] or "/")
    return text


def is_absolute(path: StoragePath) -> bool:
    """TF Serving's rule for base paths: an absolute local path or any URI."""
    return is_uri(path) or Path(path).is_absolute()


def join(path: StoragePath, *parts: str) -> StoragePath:
    """`path` with `parts` appended, for local paths and URIs alike."""
    if not is_uri(path):
        return Path(path).joinpath(*parts)
    return "/".join([str(path).rstrip("/"), *parts])


def _gfile() -> Any:
    from pipeline.tf_env import tensorflow

    return tensorflow().io.gfile


def read_text(path: StoragePath) -> str:
    """The text of a (config) file; OSError if it cannot be read."""
    if not is_uri(path):
        return Path(path).read_text()
    gfile = _gfile()
    try:
        with gfile.GFile(str(path), "r") as handle:
            return handle.read()
    except Exception as error:  # tf.errors.OpError and friends: one OSError for the callers
        raise OSError(f"{path}: {getattr(error, 'message', error)}") from None


def is_file(path: StoragePath) -> bool:
    """Whether `path` exists and is not a directory."""
    if not is_uri(path):
        return Path(path).is_file()
    gfile = _gfile()
    try:
        return gfile.exists(str(path)) and not gfile.isdir(str(path))
    except Exception:  # noqa: BLE001 - an unreachable store reads as "no such file"
        return False


def versions(base_path: StoragePath) -> dict[int, StoragePath]:
    """Every version directory under `base_path` as {version: path}, ascending; OSError if the base
    path is missing or unreadable. Local paths follow `pipeline.model_dir.version_dirs`; URIs the
    same naming rule, listed with `tf.io.gfile`."""
    if not is_uri(base_path):
        return dict(version_dirs(base_path))
    gfile = _gfile()
    base = str(base_path).rstrip("/")
    try:
        names = gfile.listdir(base)
    except Exception as error:  # tf.errors.NotFoundError, an unregistered scheme, ...
        raise OSError(getattr(error, "message", str(error))) from None
    found: dict[int, StoragePath] = {}
    for name in sorted(name.rstrip("/") for name in names):
        version = parse_version(name)
        child = f"{base}/{name}"
        if version is None or version in found or not gfile.isdir(child):
            continue
        found[version] = child
    return dict(sorted(found.items()))
