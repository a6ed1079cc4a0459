"""Helpers every dashboard page shares: which server and model the pages talk to, the
cached client, and the one way a server error is shown.

The server URL and model name are chosen on the Serving page and kept in
``st.session_state`` under :data:`URL_KEY` and :data:`MODEL_KEY` (plain keys, not widget
keys, so they survive page switches); every other page reads them through
:func:`serving_url` and :func:`model_name`.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from pipeline import config, registry, server_process
from pipeline.client import ServingClient, ServingError

URL_KEY = "serving_url"
MODEL_KEY = "model_name"
CLIENT_TIMEOUT_S = 5.0


def serving_url() -> str:
    """The model server URL this session talks to (default ``config.SERVING_URL``)."""
    return st.session_state.get(URL_KEY, config.SERVING_URL)


def model_name() -> str:
    """The model this session works with (default ``config.MODEL_NAME``)."""
    return st.session_state.get(MODEL_KEY, config.MODEL_NAME)


def base_path() -> Path:
    """Where the versions of :func:`model_name` live on disk: ``config.MODEL_BASE_PATH`` for the
    default model, else ``<MODELS_DIR>/<name>`` (names are validated when chosen)."""
    name = model_name()
    return config.MODEL_BASE_PATH if name == config.MODEL_NAME else registry.model_base_path(name)


@st.cache_resource(show_spinner=False)
def _client_for(url: str) -> ServingClient:
    return ServingClient(url, timeout=CLIENT_TIMEOUT_S)


def get_client() -> ServingClient:
    """The shared (cached per URL) :class:`ServingClient` for :func:`serving_url`."""
    return _client_for(serving_url())


def embedded_server_starting(url: str) -> server_process.ServerStatus | None:
    """The embedded server's status if it runs for ``url`` (local, same port) and so may
    simply not be listening yet (it imports TensorFlow first); else ``None``."""
    proc = server_process.status()
    if proc.running and server_process.is_local_url(url) and proc.port == server_process.url_port(url):
        return proc
    return None


def show_serving_error(exc: Exception) -> None:
    """Show a failed server call as ``st.error`` with what to do next, never as a traceback.

    No answer from a URL whose embedded server is running means it is still starting:
    that is said as ``st.info`` instead of an error telling the user to start it.
    """
    if not isinstance(exc, ServingError):
        st.error(f"Unexpected error talking to the model server: {exc}", icon=":material/error:")
    elif exc.status_code is None and (proc := embedded_server_starting(serving_url())) is not None:
        st.info(f"The embedded server (pid {proc.pid}) is starting: it imports TensorFlow and loads the "
                "newest versions, which takes a few seconds. Try again shortly; the Serving page shows "
                "its log.",
                icon=":material/hourglass_top:")
    else:
        st.error(str(exc), icon=":material/cloud_off:" if exc.status_code is None else ":material/error:")


@st.cache_resource(show_spinner=False)
def _autostart(url: str) -> server_process.ServerStatus | None:
    return server_process.autostart_if_needed(url, model_name=config.MODEL_NAME,
                                              base_path=config.MODEL_BASE_PATH)


def autostart_server_once() -> server_process.ServerStatus | None:
    """Start the embedded server for the default URL once per dashboard process, if the URL is
    local, nothing answers there and ``AUTOSTART_SERVER`` is on. Never raises: a failed start
    is left for the Serving page (and its log) to show."""
    try:
        return _autostart(config.SERVING_URL)
    except OSError:
        return None


DEFAULT_ROWS = ((1.0, 2.0), (5.0, 7.0))
"""The TF Serving tutorial's two input rows."""
FEATURES = ("x1", "x2")


def parse_rows_csv(data: bytes) -> pd.DataFrame:
    """Input rows from an uploaded CSV: exactly two columns of numbers, an optional header.

    Returns a float DataFrame with columns ``x1``, ``x2``. ``ValueError`` with a sentence
    naming the line and column of the first problem (a cell that is not a number, a wrong
    number of columns, an empty file), so nothing half-parsed is ever sent.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("The file is not UTF-8 text: save it as CSV (comma-separated values).") from None
    try:
        raw = pd.read_csv(io.StringIO(text), header=None, dtype=str, skip_blank_lines=True,
                          keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ValueError("The file is empty: it needs rows of two numbers, e.g. `1.0,2.0`.") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"The file is not a well-formed CSV: {exc}") from None
    if raw.shape[1] != 2:
        raise ValueError(f"The file has {raw.shape[1]} column(s); it needs exactly 2 (x1, x2).")
    header = raw.iloc[0].tolist()
    has_header = all(pd.to_numeric(pd.Series(header), errors="coerce").isna())
    names = [str(h).strip() or f"column {i + 1}" for i, h in enumerate(header)] if has_header else FEATURES
    body = raw.iloc[1:] if has_header else raw
    if body.empty:
        raise ValueError("The file has a header but no rows of numbers.")
    values = body.apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce"))
    for line_index, row in enumerate(values.itertuples(index=False)):
        for col, value in enumerate(row):
            if not math.isfinite(value):
                line = line_index + 1 + int(has_header)
                cell = body.iat[line_index, col]
                raise ValueError(f"Line {line}, column {col + 1} ({names[col]}): {cell!r} is not a number. "
                                 "Fix the file and upload it again; nothing was sent.")
    return pd.DataFrame(values.to_numpy(dtype=float), columns=list(FEATURES))


def check_rows(rows: pd.DataFrame) -> list[list[float]]:
    """The table's rows as ``[[x1, x2], ...]``; ``ValueError`` naming the first empty or
    non-numeric cell (row numbers start at 1, as shown in the table), or an empty table."""
    if rows.empty:
        raise ValueError("There are no input rows: add a row, random rows or upload a CSV.")
    result = []
    for i, row in enumerate(rows[list(FEATURES)].itertuples(index=False), start=1):
        values = []
        for name, value in zip(FEATURES, row, strict=True):
            number = pd.to_numeric(pd.Series([value]), errors="coerce").iloc[0]
            if pd.isna(number) or not math.isfinite(number):
                raise ValueError(f"Row {i}, column {name} is empty or not a number: "
                                 "fill it in or delete the row.")
            values.append(float(number))
        result.append(values)
    return result


def prediction_values(values: Any, rows: int) -> list[float]:
    """One number per input row from a predict answer's ``predictions``/``outputs``.

    Accepts what TF Serving returns for a one-output regression: ``[[3.0], [6.0]]``,
    ``[3.0, 6.0]``, per-row objects ``[{"output_0": [3.0]}, ...]`` or a columnar object
    ``{"output_0": [[3.0], [6.0]]}``; with several outputs, ``output_0`` is used.
    ``ValueError`` when the answer does not hold exactly one number per row.
    """
    def pick(obj: dict) -> Any:
        if len(obj) == 1:
            return next(iter(obj.values()))
        if "output_0" in obj:
            return obj["output_0"]
        raise ValueError(f"the answer has several outputs ({', '.join(sorted(obj))}) and no output_0")

    if isinstance(values, dict):
        values = pick(values)
    if not isinstance(values, list) or len(values) != rows:
        raise ValueError(f"expected {rows} predictions, got {values!r:.200}")
    result = []
    for item in values:
        while isinstance(item, dict | list):
            if isinstance(item, dict):
                item = pick(item)
            elif len(item) == 1:
                item = item[0]
            else:
                raise ValueError(f"expected one number per row, got {item!r:.100}")
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise ValueError(f"expected a number per row, got {item!r:.100}")
        result.append(float(item))
    return result
