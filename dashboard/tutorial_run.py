"""Home's "Run the tutorial", kept on disk: which run it trains, where it is, and its answer.

The tutorial is a small job (train with the defaults → wait until the server reports the new
version AVAILABLE → send ``[[1, 2], [5, 7]]`` to it). Its state lives in ``<base>/.tutorial.json``
(hidden: no model server takes it for a version), not in a browser session, so a reload, a second
tab or a restarted dashboard finds the run and its pending request again and finishes it, as the
Train page finds its runs from their records. Every step is a read-modify-write under
``<base>/.tutorial.lock`` (:mod:`pipeline.state`), so two tabs polling the same tutorial never send
its request twice. Times are wall-clock Unix times, valid across processes. No Streamlit here.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline import state

STATE_FILE = ".tutorial.json"
LOCK_FILE = ".tutorial.lock"


class Stage(enum.StrEnum):
    """Where the tutorial is: ``training`` → ``serving`` (waiting for AVAILABLE, then sending)
    → ``done`` or ``failed``."""

    TRAINING = "training"
    SERVING = "serving"
    DONE = "done"
    FAILED = "failed"

    @property
    def busy(self) -> bool:
        return self in (Stage.TRAINING, Stage.SERVING)


@dataclass
class Tutorial:
    """One tutorial: its training run, its stage and, once answered, what the server said."""

    run_id: str
    stage: Stage = Stage.TRAINING
    started: float = field(default_factory=time.time)
    """When the button was clicked (Unix time)."""
    version: int | None = None
    served_since: float | None = None
    """When the run's version was exported (Unix time): the wait for AVAILABLE counts from here."""
    note: str = ""
    predicted: list[float] | None = None
    latency_s: float | None = None
    seconds: float | None = None
    """From the click to the answer."""
    finished: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "stage": str(self.stage)}

    @classmethod
    def from_json(cls, data: Any) -> Tutorial | None:
        """The tutorial in a JSON object this module wrote; None for anything else."""
        if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
            return None
        try:
            return cls(run_id=data["run_id"], stage=Stage(data.get("stage", "")),
                       started=float(data.get("started") or 0.0), version=_int(data.get("version")),
                       served_since=_float(data.get("served_since")), note=str(data.get("note") or ""),
                       predicted=[float(v) for v in data["predicted"]] if data.get("predicted") else None,
                       latency_s=_float(data.get("latency_s")), seconds=_float(data.get("seconds")),
                       finished=_float(data.get("finished")))
        except (TypeError, ValueError):
            return None

    def end(self, stage: Stage, note: str = "", **answer: Any) -> None:
        """Finish as ``done`` (with the answer's fields) or ``failed`` (with ``note``)."""
        self.stage, self.note, self.finished = stage, note, time.time()
        for name, value in answer.items():
            setattr(self, name, value)


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def state_path(base_path: Path | str) -> Path:
    return Path(base_path) / STATE_FILE


def load(base_path: Path | str) -> Tutorial | None:
    """The model folder's latest tutorial, or None (none yet, or an unreadable file)."""
    return Tutorial.from_json(state.read_json(state_path(base_path)))


def save(base_path: Path | str, tutorial: Tutorial) -> None:
    """Write the tutorial atomically (a reader sees the old state or the new one)."""
    state.atomic_write_json(state_path(base_path), tutorial.to_json(), indent=1)


@contextlib.contextmanager
def locked(base_path: Path | str) -> Iterator[None]:
    """Hold the tutorial's lock: one session at a time moves it on (and sends its request)."""
    with state.file_lock(Path(base_path) / LOCK_FILE):
        yield
