"""The embedded server's ``models.config``: which models it serves, their version policy, and labels.

TF Serving reads a ``ModelServerConfig`` text proto (``--model_config_file``) and, with
``--model_config_file_poll_wait_seconds``, re-reads it while it runs: models added or removed,
policies and ``version_labels`` changed take effect without a restart. The dashboard starts its
embedded server with such a file (:func:`pipeline.client.local_server.server_command`) listing
every model folder under the models directory, so a session that works on another model name
never has to reconfigure the server other sessions use; the Models page sets labels
(``stable``, ``canary``) here.

TF Serving assigns a label only to a version it has loaded (AVAILABLE); with the embedded
server's policy (``latest { num_versions: 2 }``) that is one of the two newest versions.

Every model the embedded server serves logs its requests (the Traffic page reads them): an entry
written here without a ``logging_config`` gets ``log_collector_config { type: "file"
filename_prefix: "<run>/traffic/<model>/requests" } sampling_config { sampling_rate: 1.0 }``
(:mod:`pipeline.store.traffic`); a ``logging_config`` already there is kept as it is.

The file is read and written with TF Serving's own message (``tensorflow_serving.config.
model_server_config_pb2``, which does not import TensorFlow) and ``google.protobuf.text_format``,
so whatever TF Serving accepts is read, and a change rewrites only what it changes: other fields
of an entry (``logging_config``, another version policy) and the file's other settings are kept.
Every change is a read-modify-write under a file lock beside the file and an atomic write
(:mod:`pipeline.state`), so two tabs labelling at once both land and the server never reads half
a file. A file protobuf cannot parse raises ``ValueError`` naming the problem.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from pipeline import state
from pipeline.model_dir import parse_version
from pipeline.store import traffic

DEFAULT_LOADED_VERSIONS = 2
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_Config = model_server_config_pb2.ModelServerConfig
_Entry = model_server_config_pb2.ModelConfig


@dataclass(frozen=True)
class ServedModel:
    """One ``config { ... }`` entry: a model name, its folder, how many newest versions stay
    loaded, and its labels (``{"stable": 3}``)."""

    name: str
    base_path: str
    num_versions: int = DEFAULT_LOADED_VERSIONS
    labels: dict[str, int] = field(default_factory=dict)


def validate_label(label: str) -> str:
    """``label`` if it is a usable version label (a letter, then up to 63 letters, digits, ``_``
    or ``-``; not a number, which would read as a version), else ``ValueError``."""
    if not isinstance(label, str) or not _LABEL_RE.match(label):
        raise ValueError(f"invalid label {label!r}: start with a letter, then up to 63 letters, digits, "
                         "'_' or '-' (for example stable or canary)")
    return label


def _entry(model: ServedModel, into: _Entry | None = None) -> _Entry:
    """``model`` as a ``ModelConfig`` message, written over ``into`` (whose other fields stay)."""
    entry = into if into is not None else _Entry()
    entry.name = model.name
    entry.base_path = model.base_path
    entry.model_platform = entry.model_platform or "tensorflow"
    entry.model_version_policy.latest.num_versions = int(model.num_versions)
    entry.version_labels.clear()
    entry.version_labels.update({k: int(v) for k, v in model.labels.items()})
    return entry


def _log_requests(entry: _Entry, config_path: Path) -> None:
    """Give `entry` the embedded server's request logging, unless it has a `logging_config`."""
    if entry.HasField("logging_config"):
        return
    collector = entry.logging_config.log_collector_config
    collector.type = "file"
    collector.filename_prefix = str(traffic.prefix(config_path.parent, entry.name))
    entry.logging_config.sampling_config.sampling_rate = 1.0


def logging_prefix(path: Path | str, model_name: str) -> str | None:
    """Where `model_name`'s requests are logged, as the config at `path` says (its file
    collector's `filename_prefix`); None without one, or when the file is missing or unreadable."""
    try:
        config = _load(Path(path))
    except ValueError:
        return None
    for entry in config.model_config_list.config:
        if entry.name == model_name and entry.logging_config.log_collector_config.filename_prefix:
            return entry.logging_config.log_collector_config.filename_prefix
    return None


def _model(entry: _Entry) -> ServedModel:
    policy = entry.model_version_policy
    latest = policy.latest.num_versions if policy.WhichOneof("policy_choice") == "latest" else 0
    return ServedModel(entry.name, entry.base_path, latest or DEFAULT_LOADED_VERSIONS,
                       dict(sorted(entry.version_labels.items())))


def render(models: Iterable[ServedModel]) -> str:
    """The ``ModelServerConfig`` text proto for ``models`` (what TF Serving parses)."""
    config = _Config()
    for m in models:
        config.model_config_list.config.append(_entry(m))
    return text_format.MessageToString(config)


def _parse(text: str) -> _Config:
    try:
        return text_format.Parse(text, _Config())
    except text_format.ParseError as error:
        raise ValueError(f"cannot read models.config: {error}") from None


def parse(text: str) -> list[ServedModel]:
    """The models of a ``ModelServerConfig`` text proto; ``ValueError`` when protobuf cannot parse it."""
    return [_model(entry) for entry in _parse(text).model_config_list.config]


def _load(path: Path) -> _Config:
    try:
        return _parse(path.read_text())
    except FileNotFoundError:
        return _Config()


def _save(path: Path, config: _Config) -> None:
    """Write the config atomically: a polling server reads the old or the new file, never half."""
    state.atomic_write_text(path, text_format.MessageToString(config))


def read(path: Path | str) -> list[ServedModel]:
    """The models in the config at ``path`` (none when it does not exist)."""
    return [_model(entry) for entry in _load(Path(path)).model_config_list.config]


def write(path: Path | str, models: Iterable[ServedModel]) -> None:
    """Write a config of exactly ``models`` atomically."""
    _save(Path(path), _parse(render(models)))


def _locked(path: Path) -> contextlib.AbstractContextManager[None]:
    return state.file_lock(path.with_name(path.name + ".lock"))


def model_folders(models_dir: Path | str) -> list[Path]:
    """Folders under ``models_dir`` that hold at least one version (sorted by name)."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and any(parse_version(c.name) is not None for c in p.iterdir()))


def write_for_server(path: Path | str, model_name: str, base_path: Path | str,
                     num_versions: int = DEFAULT_LOADED_VERSIONS,
                     log_requests: bool = True) -> list[ServedModel]:
    """The config the embedded server starts with: ``model_name`` at ``base_path``, plus every
    other model folder beside it that has versions, each with ``latest { num_versions }`` and
    keeping its labels (and any other field) from the current file, and (``log_requests``) its
    requests logged under the run folder. A current file protobuf cannot parse is replaced.
    Returns the models written."""
    target = Path(path)
    base = Path(base_path).resolve()
    with _locked(target):
        try:
            config = _load(target)
        except ValueError:
            config = _Config()
        old = {entry.name: entry for entry in config.model_config_list.config}
        wanted = {model_name: base}
        for folder in model_folders(base.parent):
            wanted.setdefault(folder.name, folder.resolve())
        entries = []
        for name, folder in wanted.items():
            labels = dict(old[name].version_labels) if name in old else {}
            entry = _Entry()
            if name in old:
                entry.CopyFrom(old[name])
            entries.append(_entry(ServedModel(name, str(folder), num_versions, labels), entry))
            if log_requests:
                _log_requests(entries[-1], target)
        del config.model_config_list.config[:]
        config.model_config_list.config.extend(entries)
        _save(target, config)
        return [_model(entry) for entry in entries]


def ensure_model(path: Path | str, model_name: str, base_path: Path | str, log_requests: bool = True) -> bool:
    """Add ``model_name`` to an existing config if it is missing (a server polling the file then
    serves it within its poll period, its requests logged with ``log_requests``); False when
    nothing changed or there is no config."""
    target = Path(path)
    with _locked(target):
        if not target.exists():
            return False
        config = _load(target)
        if any(entry.name == model_name for entry in config.model_config_list.config):
            return False
        added = ServedModel(model_name, str(Path(base_path).resolve()))
        config.model_config_list.config.append(_entry(added))
        if log_requests:
            _log_requests(config.model_config_list.config[-1], target)
        _save(target, config)
        return True


def set_label(path: Path | str, model_name: str, label: str, version: int | None) -> ServedModel:
    """Point ``label`` of ``model_name`` at ``version`` (``None`` removes the label); return the
    model's new entry. ``ValueError`` for a bad label or a model the config does not serve.
    The entry's other fields and the rest of the file are kept as they were."""
    validate_label(label)
    target = Path(path)
    with _locked(target):
        config = _load(target)
        found = next((e for e in config.model_config_list.config if e.name == model_name), None)
        if found is None:
            raise ValueError(f"the embedded server's config ({target}) does not serve model {model_name!r}")
        if version is None:
            found.version_labels.pop(label, None)
        else:
            found.version_labels[label] = int(version)
        _save(target, config)
        return _model(found)


def labels_of(path: Path | str, model_name: str) -> dict[str, int]:
    """The labels ``model_name`` has in the config (none if the file or model is missing/unreadable)."""
    try:
        models = read(path)
    except ValueError:
        return {}
    return next((dict(m.labels) for m in models if m.name == model_name), {})


def served_models(path: Path | str) -> set[str]:
    """The names of the models the config serves (none if it is missing or unreadable)."""
    try:
        return {m.name for m in read(path)}
    except ValueError:
        return set()
