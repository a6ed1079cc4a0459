"""The Traffic page's data: where a model's request logs are, reading them as they grow, the tables
a person scans, and a link that opens one request on the Predict page.

The logs are the model server's own (`pipeline.traffic`): the embedded server writes every request
of every model under the run folder (the `filename_prefix` its models.config names); a path typed
on the page adds other log files (a TF Serving or another server of ours writing elsewhere).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import predict_history
from dashboard.session import settings
from pipeline.client import local_server
from pipeline.store import serving_config, traffic
from pipeline.traffic.logs import Logged, LogReader, ReadSummary
from pipeline.traffic.replay import Answer, Replay

READER_KEY = "traffic_reader"
MAX_CELL = 80
READ_BYTES = 16 * 1024 * 1024
"""The page reads the newest log files up to about this size (about 100,000 small requests); the
command line reads them all."""


def embedded_prefix(model: str) -> str:
    """Where the embedded server logs `model`'s requests: its models.config's prefix, else the
    run folder's default."""
    run_dir = settings().run_dir
    named = serving_config.logging_prefix(run_dir / local_server.MODELS_CONFIG_NAME, model)
    return named or str(traffic.prefix(run_dir, model))


def sources(model: str, extra: str = "") -> list[str]:
    """The logs to read: the embedded server's for `model`, and a file, folder or prefix typed in."""
    found = [embedded_prefix(model)]
    if extra.strip():
        found.append(extra.strip())
    return found


def read(paths: list[str]) -> tuple[list[Logged], ReadSummary]:
    """Every logged request in `paths`, read incrementally (one reader per session)."""
    reader = st.session_state.get(READER_KEY)
    if not isinstance(reader, LogReader):
        reader = st.session_state[READER_KEY] = LogReader(max_bytes=READ_BYTES)
    return reader.read(paths)


def left_out_text(summary: ReadSummary) -> str:
    """What the page did not read, and where to read it ("" when it read everything)."""
    if not summary.left_out_files:
        return ""
    return (f"Showing the newest {READ_BYTES // 2**20} MiB of logs: {summary.left_out_files} older file(s) "
            f"({summary.left_out_bytes / 2**20:,.1f} MiB) not read here; `python -m pipeline.traffic` reads "
            "them all.")


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def requests_table(entries: list[Logged]) -> pd.DataFrame:
    """One row per request: when, which model and version, how, outcome, speed, what went in and out."""
    return pd.DataFrame([{
        "time (UTC)": e.time.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if e.time else "",
        "model": e.model, "version / label": e.target, "API": e.api, "transport": e.transport or "?",
        "status": e.status or "?", "latency (ms)": e.latency_ms, "inputs": _cut(e.inputs),
        "outputs": _cut(e.outputs or e.message),
    } for e in entries], columns=["time (UTC)", "model", "version / label", "API", "transport", "status",
                                  "latency (ms)", "inputs", "outputs"])


def answer_text(answer: Answer) -> str:
    """One side's answer in a cell: its values, or its error."""
    if answer.outputs is None:
        return _cut(answer.error)
    parts = []
    for name, values in answer.outputs.items():
        plain = np.asarray(values).tolist()
        parts.append(f"{name + ': ' if name else ''}{json.dumps(plain, default=str, separators=(',', ':'))}")
    return _cut("; ".join(parts))


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def replay_table(result: Replay) -> pd.DataFrame:
    """A replay's rows, largest difference first: what was sent, both answers, how far apart."""
    return pd.DataFrame([{
        "difference": row.difference if np.isfinite(row.difference) else None,
        "agrees": row.agree, "time (UTC)": row.entry.time.strftime("%H:%M:%S") if row.entry.time else "",
        "inputs": _cut(row.entry.inputs), f"A: {result.a}": answer_text(row.a),
        f"B: {result.b}": answer_text(row.b), "A ms": _ms(row.a.latency_ms), "B ms": _ms(row.b.latency_ms),
        "note": row.note,
    } for row in result.rows])


def predict_link_params(entry: Logged) -> dict[str, str] | None:
    """The Predict page's query parameters that open `entry` (its model, version or label,
    signature, transport and, when small, inputs); None for a request Predict cannot send
    (multi-inference, or a record that no longer reads)."""
    from pipeline.client.warmup_records import parse_record

    if entry.api == "multi_inference":
        return None
    try:
        request = parse_record(entry.record())
    except (OSError, ValueError):
        return None
    if request is None:
        return None
    body: dict[str, Any] = {"examples": request.examples} if request.kind != "predict" else \
        {"inputs": request.inputs}
    target = {"version": entry.version} if entry.version is not None else \
        {"label": entry.label} if entry.label else {}
    transport = "gRPC" if entry.transport == "gRPC" and entry.api == "predict" else "REST"
    return predict_history.view_params(entry.model, target, signature=request.signature or "serving_default",
                                       transport=transport, fmt="columnar", body=body,
                                       default_model=settings().model_name)


def choice_label(entry: Logged) -> str:
    """One line naming a request in a picker."""
    when = entry.time.strftime("%H:%M:%S") if entry.time else "?"
    return f"{when} · {entry.api} · {entry.target} · {entry.transport or '?'} · {entry.status or '?'} · " \
           f"{_cut(entry.inputs)[:40]}"


def usage_text(run_dir: Path) -> str:
    """How much the embedded server's request logs take, per model."""
    used = traffic.usage(run_dir)
    if not used:
        return "No request logs under the run folder yet."
    return ", ".join(f"`{model}` {size / traffic.MiB:,.1f} MiB" for model, size in sorted(used.items()))
