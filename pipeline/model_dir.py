"""The on-disk layout TensorFlow Serving reads, defined once for the whole project.

A model's base path holds one directory per version. A child is a version only if its whole name
is a base-10 integer in int64 range (`1`, `00000123` = 123), as TF Serving's
`FileSystemStoragePathSource` reads it; anything else (`v1`, `0.1`, `.tmp-1234`, files) is not a
version, which is what makes "write to a hidden folder, then rename" exports safe. Inside a
version, `saved_model.pb` (or `.pbtxt`) holds MetaGraphs; TF Serving serves the one tagged
`serve` and refuses a SavedModel without it, and so does everything here.

Used by the store (versions the project writes), the server's source and servables, and the
benchmarks, so they can never disagree about what a version is. TensorFlow's protos are imported
lazily: listing versions costs no TensorFlow import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

INT64_MAX = 2**63 - 1
SERVE_TAG = "serve"


class ModelDirError(ValueError):
    """A version folder that is not a servable SavedModel; `code` is TF Serving's canonical code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_version(name: str) -> int | None:
    """The version number a directory name stands for, or None if it is not a version name."""
    if not (name.isascii() and name.isdigit()):
        return None
    value = int(name)
    return value if value <= INT64_MAX else None


def version_dirs(base_path: Path | str) -> dict[int, Path]:
    """Every version directory under `base_path` as {version: path}, in ascending order.

    Raises OSError if the base path is missing or unreadable. When two names give the same number
    (`1` and `01`), the canonical spelling wins, else the first name in sorted order, with a warning.
    """
    base = Path(base_path)
    found: dict[int, Path] = {}
    for child in sorted(base.iterdir(), key=lambda p: p.name):
        version = parse_version(child.name)
        if version is None or not child.is_dir():
            continue
        if version in found:
            keep = child if child.name == str(version) else found[version]
            log.warning("Directories %s and %s both name version %d of %s; using %s",
                        found[version].name, child.name, version, base, keep.name)
            found[version] = keep
        else:
            found[version] = child
    return dict(sorted(found.items()))


def read_meta_graph(version_path: Path | str, saved_model_class: type | None = None) -> Any:
    """The `serve` MetaGraphDef of `<version>/saved_model.pb` (or `.pbtxt`), without loading it.

    Parsed into `saved_model_class`, TensorFlow's own `SavedModel` if None (importing TensorFlow);
    `pipeline.tf_protos.message_class("tensorflow.SavedModel")` reads it without TensorFlow, for
    a caller that only looks at it.

    Raises ModelDirError with TF Serving's code and wording: NOT_FOUND when there is no SavedModel
    or no `serve` tag set, DATA_LOSS when the file cannot be parsed.
    """
    from google.protobuf import text_format

    if saved_model_class is None:
        from pipeline.tf_env import tensorflow

        tensorflow()  # quiet logs before TensorFlow's protos import the package
        from tensorflow.core.protobuf import saved_model_pb2

        saved_model_class = saved_model_pb2.SavedModel
    path = Path(version_path)
    saved_model = saved_model_class()
    binary, text = path / "saved_model.pb", path / "saved_model.pbtxt"
    try:
        if binary.exists():
            saved_model.ParseFromString(binary.read_bytes())
        elif text.exists():
            text_format.Parse(text.read_text(), saved_model)
        else:
            raise ModelDirError("NOT_FOUND", "Could not find SavedModel .pb or .pbtxt at supplied export "
                                f"directory path: {path}")
    except ModelDirError:
        raise
    except Exception as error:  # OSError, text_format.ParseError, protobuf's DecodeError
        raise ModelDirError("DATA_LOSS", f"Could not read SavedModel at {path}: {error}") from error
    for meta_graph in saved_model.meta_graphs:
        if SERVE_TAG in meta_graph.meta_info_def.tags:
            return meta_graph
    raise ModelDirError("NOT_FOUND", "Could not find meta graph def matching supplied tags: "
                        f"{{ {SERVE_TAG} }}. To inspect available tag-sets in the SavedModel, please use "
                        f"the SavedModel CLI: `saved_model_cli` (path {path})")


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of a signature, as `saved_model_cli show` lists it."""

    dtype: str
    """TF DataType name, e.g. `DT_FLOAT`."""
    shape: tuple[int, ...] | None
    """Dimensions with `-1` for unknown; `None` for unknown rank."""
    name: str
    """The graph tensor this input or output is bound to, e.g. `serving_default_inputs:0`."""


@dataclass(frozen=True)
class SignatureInfo:
    """One SignatureDef of a version (inputs, outputs, method name)."""

    key: str
    inputs: dict[str, TensorInfo]
    outputs: dict[str, TensorInfo]
    method_name: str

    def cli_text(self) -> str:
        """The same lines `saved_model_cli show --dir <version> --all` prints for it."""
        lines = [f"signature_def['{self.key}']:"]
        for title, kind, tensors in (
            ("input(s)", "inputs", self.inputs),
            ("output(s)", "outputs", self.outputs),
        ):
            lines.append(f"  The given SavedModel SignatureDef contains the following {title}:")
            for name, info in tensors.items():
                shape = (
                    "unknown_rank"
                    if info.shape is None
                    else "(" + ", ".join(map(str, info.shape)) + (",)" if len(info.shape) == 1 else ")")
                )
                lines += [
                    f"    {kind}['{name}'] tensor_info:",
                    f"        dtype: {info.dtype}",
                    f"        shape: {shape}",
                    f"        name: {info.name}",
                ]
        lines.append(f"  Method name is: {self.method_name}")
        return "\n".join(lines)


def signature_infos(meta_graph: Any) -> dict[str, SignatureInfo]:
    """Every SignatureDef of a MetaGraphDef, by key, in key order (dtype names from the message's
    own descriptor, so a MetaGraphDef from either `read_meta_graph` class works)."""

    def tensors(infos: Any) -> dict[str, TensorInfo]:
        out = {}
        for name in sorted(infos):
            info = infos[name]
            shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
            dtypes = info.DESCRIPTOR.fields_by_name["dtype"].enum_type.values_by_number
            dtype = dtypes[info.dtype].name if info.dtype in dtypes else str(info.dtype)
            out[name] = TensorInfo(dtype, shape, info.name)
        return out

    return {
        key: SignatureInfo(key, tensors(sig.inputs), tensors(sig.outputs), sig.method_name)
        for key, sig in sorted(meta_graph.signature_def.items())
    }


def read_signatures(version_path: Path | str, saved_model_class: type | None = None
                    ) -> dict[str, SignatureInfo]:
    """Every SignatureDef of a version's `serve` MetaGraph, by key; `saved_model_class` and
    ModelDirError as read_meta_graph."""
    return signature_infos(read_meta_graph(version_path, saved_model_class))


def read_signature(version_path: Path | str, signature: str = "serving_default") -> SignatureInfo:
    """One signature of a version (default `serving_default`); ModelDirError NOT_FOUND if absent."""
    signatures = read_signatures(version_path)
    if signature not in signatures:
        raise ModelDirError(
            "NOT_FOUND",
            f"version at {str(version_path)!r} has no signature {signature!r}; "
            f"it has {', '.join(signatures) or 'none'}",
        )
    return signatures[signature]
