"""A training run's record as a type: :class:`RunRecord`, its :class:`RunStatus`, and its JSON.

The record is what every page, the CLI and the exporter know about a run (config, learned /
true / OLS weights, errors, per-epoch history, timings, quality verdict, status and, once
exported, its version). On disk it stays the plain JSON object older code wrote, key for key,
plus ``schema_version`` (:data:`SCHEMA_VERSION`), so other readers (TF Serving ignores it, a
person reads it) see the same file. Records written before the schema version existed (no
``schema_version``) read as version 0 with the same meaning; keys this code does not know (a
newer writer's) are kept in :attr:`RunRecord.extra` and written back unchanged.

Per-epoch ``history`` entries, ``progress``, ``config`` (a :class:`pipeline.training.fit.TrainConfig`
as a dict), ``timings``, ``quality`` (a :class:`pipeline.training.quality.Verdict` as a dict) and
``formats`` stay JSON objects: they are payloads drawn or parsed by their own owners.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
"""1: ``schema_version`` written; 0 (absent): records of earlier code, read the same way."""


class RunStatus(enum.StrEnum):
    """Where a run is: ``running`` until it ends ``succeeded``, ``failed`` or ``cancelled``.
    A ``StrEnum``, so it is written (and compares) as the plain string older records hold."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"
    """A status this code does not know (a record from elsewhere): shown, never acted on."""

    @property
    def ended(self) -> bool:
        """True for the end states (a run that is not running any more)."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)

    @classmethod
    def parse(cls, value: Any) -> RunStatus:
        try:
            return cls(str(value))
        except ValueError:
            return cls.UNKNOWN


@dataclass(frozen=True)
class Weights:
    """A linear model's parameters: one weight per input feature, and the bias."""

    w: tuple[float, ...]
    b: float

    @property
    def flat(self) -> list[float]:
        """``[*w, b]``: the order of ``param_names`` (``w1``, ``w2``, ..., ``b``)."""
        return [*self.w, self.b]

    def to_json(self) -> dict[str, Any]:
        return {"w": list(self.w), "b": self.b}

    @classmethod
    def from_json(cls, data: Any) -> Weights | None:
        """``{"w": [...], "b": x}`` as Weights, or None when it is not one."""
        if not isinstance(data, Mapping) or not isinstance(data.get("w"), list | tuple) or "b" not in data:
            return None
        try:
            return cls(tuple(float(v) for v in data["w"]), float(data["b"]))
        except (TypeError, ValueError):
            return None


@dataclass(frozen=True)
class RunErrors:
    """``max |learned − reference|`` over every parameter, against the truth and against OLS."""

    vs_true: float
    vs_ols: float

    @classmethod
    def from_json(cls, data: Any) -> RunErrors | None:
        if not isinstance(data, Mapping):
            return None
        try:
            return cls(float(data["vs_true"]), float(data["vs_ols"]))
        except (KeyError, TypeError, ValueError):
            return None


_ORDER = ("id", "status", "started", "config", "batch_size", "true", "export_requested", "export_anyway",
          "libraries", "history", "progress", "learned", "ols", "errors", "timings", "quality", "error",
          "traceback", "export_held", "version", "version_path", "exported", "exported_anyway",
          "exported_after_run", "formats", "finished", "created")
"""The record's keys in the order older code wrote them (``schema_version`` and unknown keys last)."""


@dataclass
class RunRecord:
    """One training run, as recorded on disk (``runs/<id>.json``, a version's ``assets.extra/run.json``).

    Mutable: a run's own process fills it in as it trains and exports, and saves it again."""

    id: str
    status: RunStatus = RunStatus.RUNNING
    config: dict[str, Any] = field(default_factory=dict)
    started: str | None = None
    """ISO-8601 UTC time the run started."""
    finished: str | None = None
    batch_size: int | None = None
    true: Weights | None = None
    learned: Weights | None = None
    ols: Weights | None = None
    errors: RunErrors | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    """One entry per finished epoch: ``epoch``, ``loss``, ``mae``, ``w``, ``b``."""
    progress: dict[str, Any] | None = None
    """The latest progress report of a running run (epoch, step, fraction, loss, w, b, elapsed_s)."""
    timings: dict[str, float] = field(default_factory=dict)
    quality: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    export_requested: bool = True
    export_anyway: bool = False
    export_held: str | None = None
    """Why a finished run was not exported (the quality gate warned)."""
    version: int | None = None
    version_path: str | None = None
    exported: str | None = None
    exported_anyway: bool = False
    exported_after_run: bool = False
    created: str | None = None
    """In a version's copy: when the version was exported."""
    formats: dict[str, dict[str, Any]] = field(default_factory=dict)
    libraries: dict[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this code does not know, kept as they were."""

    @property
    def quality_level(self) -> str:
        """The quality gate's level (``ok``, ``warning``, ``failed``), or "" before the gate ran."""
        return str((self.quality or {}).get("level", ""))

    @property
    def epochs_done(self) -> int:
        return len(self.history)

    def to_json(self) -> dict[str, Any]:
        """The record as the JSON object older code wrote (same keys; None and empty extras left
        out, as they were), plus ``schema_version``."""
        values = {
            **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"},
            "schema_version": SCHEMA_VERSION,
        }
        out: dict[str, Any] = {}
        for key in (*_ORDER, "schema_version"):
            value = values[key]
            if isinstance(value, Weights):
                value = value.to_json()
            elif isinstance(value, RunErrors):
                value = dataclasses.asdict(value)
            elif isinstance(value, RunStatus):
                value = str(value)
            kept_empty = key == "exported_anyway" and self.exported is not None  # written with `exported`
            if value is None or (key in _DROPPED_WHEN_EMPTY and not value and not kept_empty):
                continue
            out[key] = value
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}

    def to_json_text(self, indent: int = 2) -> str:
        """:meth:`to_json` as text, keys sorted (as a version's copy has always been written);
        NaN and infinities as Python's json writes and reads them."""
        return json.dumps(self.to_json(), indent=indent, sort_keys=True, allow_nan=True)

    @classmethod
    def from_json(cls, data: Any) -> RunRecord | None:
        """The record in a JSON object written by this or older code (or by hand: a missing field
        reads as unknown, e.g. an id of ``""``); None when it is not a JSON object."""
        if not isinstance(data, Mapping):
            return None
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        version = data.get("version")
        return cls(
            id=str(data.get("id") or ""),
            status=RunStatus.parse(data.get("status", RunStatus.UNKNOWN)),
            config=dict(data.get("config") or {}),
            started=_text(data.get("started")),
            finished=_text(data.get("finished")),
            batch_size=_int(data.get("batch_size")),
            true=Weights.from_json(data.get("true")),
            learned=Weights.from_json(data.get("learned")),
            ols=Weights.from_json(data.get("ols")),
            errors=RunErrors.from_json(data.get("errors")),
            history=[h for h in data.get("history") or [] if isinstance(h, Mapping)],
            progress=data.get("progress") if isinstance(data.get("progress"), Mapping) else None,
            timings={str(k): v for k, v in (data.get("timings") or {}).items()},
            quality=data.get("quality") if isinstance(data.get("quality"), Mapping) else None,
            error=_text(data.get("error")),
            traceback=_text(data.get("traceback")),
            export_requested=bool(data.get("export_requested", True)),
            export_anyway=bool(data.get("export_anyway", False)),
            export_held=_text(data.get("export_held")),
            version=_int(version),
            version_path=_text(data.get("version_path")),
            exported=_text(data.get("exported")),
            exported_anyway=bool(data.get("exported_anyway", False)),
            exported_after_run=bool(data.get("exported_after_run", False)),
            created=_text(data.get("created")),
            formats=dict(data.get("formats") or {}),
            libraries=dict(data.get("libraries") or {}),
            schema_version=_int(data.get("schema_version")) or 0,
            extra={k: v for k, v in data.items() if k not in known},
        )


_DROPPED_WHEN_EMPTY = frozenset({"formats", "libraries", "timings", "exported_after_run", "exported_anyway"})
"""Keys older code wrote only once they had a value (``history`` and ``config`` always are;
``exported_anyway`` is written with ``exported``, even when false)."""


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    """An integer field (a version, a batch size) as an int; None for missing or non-numbers."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    return None
