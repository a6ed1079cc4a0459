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

Every change is a read-modify-write under a ``flock`` beside the file and an atomic rename, so
two tabs labelling at once both land and the server never reads half a file. Only the subset of
the text format this module writes is read back (``ValueError`` naming the problem otherwise).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.model_dir import parse_version

DEFAULT_LOADED_VERSIONS = 2
_LABEL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_TOKEN_RE = re.compile(r'\s*(?:(#[^\n]*)|([{}:])|("(?:[^"\\]|\\.)*")'
                       r"|([A-Za-z_][A-Za-z0-9_.]*)|(-?[0-9][0-9.eE+-]*))")


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


def render(models: Iterable[ServedModel]) -> str:
    """The ``ModelServerConfig`` text proto for ``models`` (what TF Serving parses)."""
    lines = ["model_config_list {"]
    for m in models:
        lines += ["  config {", f"    name: {json.dumps(m.name)}",
                  f"    base_path: {json.dumps(m.base_path)}", '    model_platform: "tensorflow"',
                  f"    model_version_policy {{ latest {{ num_versions: {int(m.num_versions)} }} }}"]
        lines += [f"    version_labels {{ key: {json.dumps(k)} value: {int(v)} }}"
                  for k, v in sorted(m.labels.items())]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _tokens(text: str) -> list[str]:
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise ValueError(f"cannot read models.config near {text[pos:pos + 30]!r}")
        pos = match.end()
        if match.group(1) is None:
            tokens.append(next(g for g in match.groups()[1:] if g is not None))
    return tokens


def _message(tokens: list[str], i: int) -> tuple[dict[str, list[Any]], int]:
    """Parse ``name: value`` and ``name { ... }`` pairs from ``tokens[i]`` to the closing brace."""
    fields: dict[str, list[Any]] = {}
    while i < len(tokens) and tokens[i] != "}":
        name = tokens[i]
        if tokens[i + 1] == ":":
            value, i = tokens[i + 2], i + 3
            if value == "{":
                value, i = _message(tokens, i)
                i += 1
            else:
                value = json.loads(value) if value.startswith('"') else value
        elif tokens[i + 1] == "{":
            value, i = _message(tokens, i + 2)
            i += 1
        else:
            raise ValueError(f"cannot read models.config: unexpected {tokens[i + 1]!r} after {name!r}")
        fields.setdefault(name, []).append(value)
    return fields, i


def parse(text: str) -> list[ServedModel]:
    """The models of a config in the format :func:`render` writes; ``ValueError`` otherwise."""
    try:
        root, _ = _message(_tokens(text), 0)
    except IndexError:
        raise ValueError("cannot read models.config: it ends in the middle of an entry") from None
    models = []
    for entry in (root.get("model_config_list") or [{}])[0].get("config", []):
        policy = (entry.get("model_version_policy") or [{}])[0]
        latest = (policy.get("latest") or [{}])[0]
        labels = {str(lab["key"][0]): int(lab["value"][0]) for lab in entry.get("version_labels", [])}
        models.append(ServedModel(str(entry["name"][0]), str(entry["base_path"][0]),
                                  int(latest.get("num_versions", [DEFAULT_LOADED_VERSIONS])[0]), labels))
    return models


def read(path: Path | str) -> list[ServedModel]:
    """The models in the config at ``path`` (none when it does not exist)."""
    try:
        return parse(Path(path).read_text())
    except FileNotFoundError:
        return []


def write(path: Path | str, models: Iterable[ServedModel]) -> None:
    """Write the config atomically (temporary file, then rename): a polling server reads the old
    or the new file, never half of one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(render(models))
    os.replace(tmp, target)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def model_folders(models_dir: Path | str) -> list[Path]:
    """Folders under ``models_dir`` that hold at least one version (sorted by name)."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and any(parse_version(c.name) is not None for c in p.iterdir()))


def write_for_server(path: Path | str, model_name: str, base_path: Path | str,
                     num_versions: int = DEFAULT_LOADED_VERSIONS) -> list[ServedModel]:
    """The config the embedded server starts with: ``model_name`` at ``base_path``, plus every
    other model folder beside it that has versions, each keeping its labels from the current file.
    Returns the models written."""
    target = Path(path)
    base = Path(base_path).resolve()
    with _locked(target):
        try:
            old = {m.name: m for m in read(target)}
        except ValueError:
            old = {}
        wanted = {model_name: base}
        for folder in model_folders(base.parent):
            wanted.setdefault(folder.name, folder.resolve())
        models = [ServedModel(name, str(folder), num_versions, dict(old[name].labels) if name in old else {})
                  for name, folder in wanted.items()]
        write(target, models)
        return models


def ensure_model(path: Path | str, model_name: str, base_path: Path | str) -> bool:
    """Add ``model_name`` to an existing config if it is missing (a server polling the file then
    serves it within its poll period); False when nothing changed or there is no config."""
    target = Path(path)
    with _locked(target):
        if not target.exists():
            return False
        models = read(target)
        if any(m.name == model_name for m in models):
            return False
        write(target, [*models, ServedModel(model_name, str(Path(base_path).resolve()))])
        return True


def set_label(path: Path | str, model_name: str, label: str, version: int | None) -> ServedModel:
    """Point ``label`` of ``model_name`` at ``version`` (``None`` removes the label); return the
    model's new entry. ``ValueError`` for a bad label or a model the config does not serve."""
    validate_label(label)
    target = Path(path)
    with _locked(target):
        models = read(target)
        found = next((m for m in models if m.name == model_name), None)
        if found is None:
            raise ValueError(f"the embedded server's config ({target}) does not serve model {model_name!r}")
        labels = {k: v for k, v in found.labels.items() if k != label}
        if version is not None:
            labels[label] = int(version)
        updated = replace(found, labels=labels)
        write(target, [updated if m.name == model_name else m for m in models])
        return updated


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
