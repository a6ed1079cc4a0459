"""Which models the dashboard can offer in its model picker, and where each name came from.

TF Serving's REST API cannot list the models a server serves, so names are gathered from every
place that may know them (:func:`gather`): the server itself when it offers a listing (our
server's documented extension ``GET /v1/models:list``; a real TF Serving answers 400 and is simply
not asked again), the embedded server's ``models.config``, a ``models.config`` the user names
(``MODEL_CONFIG_FILE`` or the picker's field, e.g. the file a real TF Serving was started with),
names the user typed (remembered on disk in the dashboard's run folder), the default model
(``MODEL_NAME``) and the model of the current link. Pure functions and small files, no Streamlit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import state
from pipeline.store import serving_config
from pipeline.store.versions import validate_model_name

REMEMBERED_FILE = "dashboard_models.json"
"""Names typed into the picker, kept in the dashboard's run folder (``SERVING_RUN_DIR``)."""
REMEMBERED_LOCK = ".dashboard_models.lock"
MAX_REMEMBERED = 50
MAX_CONFIG_BYTES = 1024 * 1024

SERVER, EMBEDDED, CONFIG, TYPED, DEFAULT, LINK = (
    "the server", "the embedded server's models.config", "your models.config", "typed", "default", "link")
ORIGINS = {SERVER: "listed by the server", EMBEDDED: "in the embedded server's models.config",
           CONFIG: "in your models.config", TYPED: "typed here before"}
"""How the picker's caption says where a name came from (the default and the link go unsaid)."""


@dataclass(frozen=True)
class ModelChoices:
    """The names to offer, default first and then by name, each with where it was found."""

    names: list[str]
    sources: dict[str, list[str]] = field(default_factory=dict)

    def origin(self, name: str) -> str:
        """Where ``name`` was found, as a sentence fragment for the picker's caption: ``listed by the
        server; in the embedded server's models.config`` ("" for the default or a link alone)."""
        return "; ".join(ORIGINS[s] for s in self.sources.get(name, []) if s in ORIGINS)


def config_model_names(text: str) -> list[str]:
    """The model names a ``ModelServerConfig`` text proto lists (``model_config_list { config { name:
    "x" ... } }``), in file order, without duplicates. Read with TF Serving's own message
    (:func:`pipeline.store.serving_config.parse`), so any file TF Serving reads gives its names;
    ``ValueError`` for a file it would refuse."""
    names: list[str] = []
    for model in serving_config.parse(text):
        if model.name and model.name not in names:
            names.append(model.name)
    return names


def read_config_names(path: Path | str) -> list[str]:
    """The model names in the ``models.config`` at ``path``; ``ValueError`` with a sentence a user
    can act on when it cannot be read or names no model."""
    target = Path(path).expanduser()
    try:
        if target.stat().st_size > MAX_CONFIG_BYTES:
            raise ValueError(f"{target} is larger than {MAX_CONFIG_BYTES // 1024} KiB: not a models.config")
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{target} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{target} is a folder: name the models.config file itself") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{target} cannot be read: {exc}") from None
    try:
        names = config_model_names(text)
    except ValueError as exc:
        raise ValueError(f"{target} is not a models.config TF Serving reads ({exc})") from None
    if not names:
        raise ValueError(f"{target} names no model (expected `config {{ name: \"...\" ... }}` entries)")
    return names


def config_model_names_or_none(path: Path | str) -> list[str]:
    """The model names in the ``models.config`` at ``path``, none when it is missing or unreadable
    (for the embedded server's own file, which exists only once it was started)."""
    try:
        return read_config_names(path)
    except ValueError:
        return []


def remembered(run_dir: Path | str) -> list[str]:
    """Names typed into the picker earlier (newest first); a missing or damaged file is none."""
    data = state.read_json(Path(run_dir) / REMEMBERED_FILE)
    names = data.get("typed") if isinstance(data, dict) else None
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []


def remember(run_dir: Path | str, name: str) -> list[str]:
    """Keep ``name`` first among the remembered names (at most :data:`MAX_REMEMBERED`); returns the
    new list. A read-modify-write under a file lock with an atomic write (:mod:`pipeline.state`),
    so two sessions remembering at once both land. ``OSError`` when the run folder is not writable."""
    with state.file_lock(Path(run_dir) / REMEMBERED_LOCK):
        names = [name, *(n for n in remembered(run_dir) if n != name)][:MAX_REMEMBERED]
        state.atomic_write_json(Path(run_dir) / REMEMBERED_FILE, {"typed": names})
    return names


def forget(run_dir: Path | str, name: str) -> list[str]:
    """Drop ``name`` from the remembered names (as :func:`remember` writes); returns the new list."""
    path = Path(run_dir) / REMEMBERED_FILE
    if not path.exists():
        return []
    with state.file_lock(Path(run_dir) / REMEMBERED_LOCK):
        names = [n for n in remembered(run_dir) if n != name]
        state.atomic_write_json(path, {"typed": names})
    return names


def usable(names: Iterable[str]) -> list[str]:
    """The names that are safe model names (``validate_model_name``), in order."""
    kept = []
    for name in names:
        with contextlib.suppress(ValueError):
            kept.append(validate_model_name(name))
    return kept


def gather(*, default: str, current: str, server: Sequence[str] | None = None,
           embedded: Sequence[str] = (), config: Sequence[str] = (),
           typed: Sequence[str] = ()) -> ModelChoices:
    """Every name from every source, the default model first, then by name; each name with the
    list of sources that mention it. ``server`` is ``None`` when the server cannot list models."""
    sources: dict[str, list[str]] = {}
    for where, names in ((DEFAULT, [default]), (LINK, [current]), (SERVER, server or ()),
                         (EMBEDDED, embedded), (CONFIG, config), (TYPED, typed)):
        for name in usable(names):
            found = sources.setdefault(name, [])
            if where not in found:
                found.append(where)
    ordered = sorted(sources, key=lambda n: (n != default, n.lower(), n))
    return ModelChoices(ordered, sources)
