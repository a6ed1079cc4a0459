"""Helpers every dashboard page shares: the settings, which server and model the pages talk to,
the cached client, the one way a server error is shown, and the one way a page says what just
happened (a flash message that survives the rerun after a click).

The settings are read from the environment once per dashboard process (:func:`settings`). The
server URL and model name are chosen on the Serving page and kept in ``st.session_state`` under
:data:`URL_KEY` and :data:`MODEL_KEY` (plain keys, not widget keys, so they survive page
switches); every other page reads them through :func:`serving_url` and :func:`model_name`.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import launch
from pipeline.client import local_server
from pipeline.client.errors import ClientError
from pipeline.client.grpc import GrpcClient
from pipeline.client.rest import ServingClient
from pipeline.client.snippets import start_command
from pipeline.client.urls import is_local_url, url_port
from pipeline.settings import Settings
from pipeline.store import versions

URL_KEY = "serving_url"
MODEL_KEY = "model_name"
FLASH_KEY = "flash"
STOPPED_KEY = "serving_stopped_by_user"
"""Set when this session stopped the embedded server on the Serving page (cleared by a start)."""
CLIENT_TIMEOUT_S = 5.0


SETTINGS_KEY = "settings"


def settings() -> Settings:
    """The dashboard's settings, read from the environment once when a session starts and kept in
    its session state, so every page of the session sees the same values (and a test sets the
    environment before the app runs instead of patching module attributes)."""
    if SETTINGS_KEY not in st.session_state:
        st.session_state[SETTINGS_KEY] = Settings.from_env()
    return st.session_state[SETTINGS_KEY]


def flash(message: str) -> None:
    """Say `message` (as `st.success`) at the top of the next run of the current page: for an
    action that ends in `st.rerun()`, whose own output would be wiped by the rerun."""
    st.session_state[FLASH_KEY] = message


def show_flash() -> None:
    """Show the pending flash message, if any, once."""
    if message := st.session_state.pop(FLASH_KEY, None):
        st.success(message)


def serving_url() -> str:
    """The model server URL this session talks to (default ``Settings.serving_url``)."""
    return st.session_state.get(URL_KEY, settings().serving_url)


def model_name() -> str:
    """The model this session works with (default ``Settings.model_name``)."""
    return st.session_state.get(MODEL_KEY, settings().model_name)


def base_path() -> Path:
    """Where the versions of :func:`model_name` live on disk: ``Settings.model_base_path`` for the
    default model, else ``<models_dir>/<name>`` (names are validated when chosen)."""
    name, s = model_name(), settings()
    return s.model_base_path if name == s.model_name else versions.model_base_path(name, s.models_dir)


@st.cache_resource(show_spinner=False)
def _client_for(url: str) -> ServingClient:
    return ServingClient(url, timeout=CLIENT_TIMEOUT_S)


def get_client() -> ServingClient:
    """The shared (cached per URL) :class:`ServingClient` for :func:`serving_url`."""
    return _client_for(serving_url())


@st.cache_resource(show_spinner=False)
def _grpc_client_for(target: str, timeout: float) -> GrpcClient:
    return GrpcClient(target, timeout=timeout)


def get_grpc_client(timeout: float = CLIENT_TIMEOUT_S) -> GrpcClient:
    """The shared :class:`GrpcClient` for the gRPC target (``Settings.grpc_target``, TF Serving's
    port 8500). Its messages are TF Serving's protos, read without importing TensorFlow."""
    return _grpc_client_for(settings().grpc_target, timeout)


def server_status() -> local_server.ServerStatus:
    """The embedded server as recorded in this dashboard's run folder."""
    return local_server.status(settings().run_dir)


def embedded_server_starting(url: str) -> local_server.ServerStatus | None:
    """The embedded server's status if it runs for ``url`` (local, same port) and so may
    simply not be listening yet (it imports TensorFlow first); else ``None``."""
    proc = server_status()
    if proc.running and is_local_url(url) and proc.port == url_port(url):
        return proc
    return None


def down_word(exc: ClientError, url: str) -> str:
    """What a server that does not answer at ``url`` is, in one word every page uses: ``starting``
    (the embedded server for ``url`` runs but is still importing TensorFlow), ``stopped`` (this
    session stopped it on the Serving page) or ``down``."""
    if exc.status_code is None and embedded_server_starting(url) is not None:
        return "starting"
    if st.session_state.get(STOPPED_KEY) and not server_status().running:
        return "stopped"
    return "down"


def serving_url_is_dashboard(url: str | None = None) -> bool:
    """True when the server URL is this dashboard (a local URL on the dashboard's own port where
    Streamlit answers): it must be reported, never shown as a healthy model server."""
    url = url or serving_url()
    return (launch.points_at_dashboard(url, int(st.get_option("server.port")))
            and _client_for(url).is_streamlit())


def show_dashboard_url_error(url: str) -> None:
    """Say that ``url`` is the dashboard itself, and how to point at the model server instead."""
    s = settings()
    st.error(f"{url} is this dashboard, not a model server (SERVING_URL or the URL on the Serving page "
             f"points at the dashboard's own port). The model server's REST port is {s.rest_port}: use "
             f"http://127.0.0.1:{s.rest_port} on the Serving page, or restart with that SERVING_URL.",
             icon=":material/link_off:")


def show_serving_error(exc: Exception, *, on_serving_page: bool = False) -> None:
    """Show a failed server call as ``st.error`` with what to do next, never as a traceback.

    No answer from a URL whose embedded server is running means it is still starting:
    that is said as ``st.info`` instead of an error telling the user to start it. No answer
    from a local URL gets the dashboard's own way to start one (on the Serving page itself:
    the Start button below). A URL that is the dashboard itself is said to be so.
    """
    url = serving_url()
    if isinstance(exc, ClientError) and exc.status_code is not None and serving_url_is_dashboard(url):
        show_dashboard_url_error(url)
    elif not isinstance(exc, ClientError):
        st.error(f"Unexpected error talking to the model server: {exc}", icon=":material/error:")
    elif exc.status_code is None and (proc := embedded_server_starting(url)) is not None:
        st.info(f"The embedded server (pid {proc.pid}) is starting: it imports TensorFlow and loads the "
                "newest versions, which takes a few seconds. Try again shortly; the Serving page shows "
                "its log.",
                icon=":material/hourglass_top:")
    elif exc.status_code is None:
        if is_local_url(url):
            command = start_command(url_port(url), model_name(), base_path())
            where = "with Start below" if on_serving_page else "on the Serving page"
            todo = f"Start it {where} or run `{command}`, or fix the server URL."
        else:
            todo = "Check that the server runs there and that the URL on the Serving page is right."
        st.error(f"{exc.message} ({exc.url}). {todo}", icon=":material/cloud_off:")
    else:
        st.error(str(exc), icon=":material/error:")


@st.cache_resource(show_spinner=False)
def _autostart(url: str) -> local_server.ServerStatus | None:
    s = settings()
    return local_server.autostart_if_needed(url, enabled=s.autostart_server, model_name=s.model_name,
                                            base_path=s.model_base_path, run_dir=s.run_dir)


def autostart_server_once() -> local_server.ServerStatus | None:
    """Start the embedded server for the default URL once per dashboard process, if the URL is
    local, nothing answers there and ``AUTOSTART_SERVER`` is on. Never raises: a failed start
    is left for the Serving page (and its log) to show."""
    try:
        return _autostart(settings().serving_url)
    except OSError:
        return None


_CPP_NOISE = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)"
                        r"|I\d{4} [\d:.]+\s+\d+ \S+:\d+\])")


def without_cpp_noise(log: str) -> tuple[str, int]:
    """``log`` without TensorFlow's C++ info lines (oneDNN, CUDA stubs, absl's preamble), which
    TF_CPP_MIN_LOG_LEVEL does not silence before absl logging starts; and how many were hidden.
    Warnings and errors from C++ (``W``/``E`` lines) are kept: they may say why a load failed."""
    lines = log.splitlines()
    kept = [line for line in lines if not _CPP_NOISE.match(line)]
    return "\n".join(kept), len(lines) - len(kept)


DEFAULT_ROWS = ((1.0, 2.0), (5.0, 7.0))
"""The TF Serving tutorial's two input rows."""
FEATURES = ("x1", "x2")
MAX_INTERACTIVE_ROWS = 50_000
"""Rows the Predict page sends in one request; larger inputs go to batch scoring."""
BATCH_HINT = ("`python -m pipeline.batch --input rows.csv --output predictions.parquet` "
              "(Spark; the Batch page does the same).")


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
    if len(body) > MAX_INTERACTIVE_ROWS:
        raise ValueError(f"The file has {len(body):,} rows; this page sends up to {MAX_INTERACTIVE_ROWS:,}. "
                         f"Score large files in batch: {BATCH_HINT}")
    values = body.apply(lambda col: pd.to_numeric(col.str.strip(), errors="coerce")).to_numpy(dtype=float)
    if (bad := first_bad_cell(values)) is not None:
        row, col = bad
        line = row + 1 + int(has_header)
        raise ValueError(f"Line {line}, column {col + 1} ({names[col]}): {body.iat[row, col]!r} is not a "
                         "number. Fix the file and upload it again; nothing was sent.")
    return pd.DataFrame(values, columns=list(FEATURES))


def first_bad_cell(values: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the first cell that is not a finite number, scanning row by row, or
    ``None``; one vectorised pass, so 50,000 rows are checked in milliseconds."""
    bad = np.argwhere(~np.isfinite(values))
    return None if bad.size == 0 else (int(bad[0][0]), int(bad[0][1]))


def check_rows(rows: pd.DataFrame) -> np.ndarray:
    """The table's rows as a float array of shape ``(n, 2)``; ``ValueError`` naming the first
    empty or non-numeric cell (row numbers start at 1, as shown in the table; a half-filled new
    row is named, never dropped), an empty table, or more rows than the page sends.

    Vectorised (one ``to_numeric`` per column), so it costs milliseconds at 50,000 rows."""
    if rows.empty:
        raise ValueError("There are no input rows: add a row, random rows or upload a CSV.")
    if len(rows) > MAX_INTERACTIVE_ROWS:
        raise ValueError(f"{len(rows):,} rows is more than this page sends ({MAX_INTERACTIVE_ROWS:,}): "
                         f"remove rows, or score them in batch: {BATCH_HINT}")
    values = rows[list(FEATURES)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    if (bad := first_bad_cell(values)) is not None:
        row, col = bad
        raise ValueError(f"Row {row + 1}, column {FEATURES[col]} is empty or not a number: "
                         "fill it in or delete the row.")
    return values


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
