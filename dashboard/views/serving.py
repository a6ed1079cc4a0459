"""Serving: which model server the dashboard talks to, whether it is up, what it serves.

The top of the page chooses the server URL and model name (kept for every page in the
session). A fragment polls the server every few seconds: health and latency, the
``model_version_status`` of every version, and the metadata (signatures) of the version a
request without a version would reach. Below, the embedded server's controls (start, stop,
restart, log): enabled only when the URL is on this machine. A real TF Serving at the URL
shows the same way; only the controls do not apply to it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import utils
from pipeline import registry, server_process
from pipeline.client import ServingError, available_versions, normalize_url, served_version, signature_rows

POLL_S = 2.0
LOG_LINES = 40
URL_INPUT, MODEL_INPUT = "serving_url_input", "serving_model_input"
PROBLEM_KEY = "serving_input_problem"
FLASH_KEY = "serving_flash"


def _apply_url() -> None:
    try:
        st.session_state[utils.URL_KEY] = normalize_url(st.session_state[URL_INPUT])
        st.session_state.pop(PROBLEM_KEY, None)
    except ValueError as exc:
        st.session_state[PROBLEM_KEY] = str(exc)


def _apply_model() -> None:
    name = st.session_state[MODEL_INPUT].strip()
    try:
        st.session_state[utils.MODEL_KEY] = registry.validate_model_name(name)
        st.session_state.pop(PROBLEM_KEY, None)
    except ValueError as exc:
        st.session_state[PROBLEM_KEY] = f"Model name not changed: {exc}"


def status_table(statuses: list[dict[str, Any]]) -> pd.DataFrame:
    """``model_version_status`` as rows: version, state, error code and message."""
    return pd.DataFrame([{
        "version": int(s.get("version", 0)), "state": s.get("state", ""),
        "error_code": s.get("status", {}).get("error_code", ""),
        "error_message": s.get("status", {}).get("error_message", ""),
    } for s in statuses], columns=["version", "state", "error_code", "error_message"])


def render_target() -> None:
    """URL and model inputs; a bad value is reported and the previous one kept."""
    st.session_state.setdefault(URL_INPUT, utils.serving_url())
    st.session_state.setdefault(MODEL_INPUT, utils.model_name())
    left, right = st.columns([3, 2])
    left.text_input("Model server URL", key=URL_INPUT, on_change=_apply_url,
                    help="TF Serving's REST API, e.g. http://127.0.0.1:8501 (the embedded server) or a "
                    "tensorflow/serving container.")
    right.text_input("Model name", key=MODEL_INPUT, on_change=_apply_model,
                     help="The served model (--model_name, or a name in models.config).")
    if PROBLEM_KEY in st.session_state:
        st.error(st.session_state[PROBLEM_KEY])


def render_health(model: str) -> None:
    """Health badge, version table and metadata; each failure shown as a readable message."""
    client = utils.get_client()
    try:
        latency = client.ping()
    except ServingError as exc:
        starting = exc.status_code is None and utils.embedded_server_starting(client.base_url) is not None
        st.badge("starting" if starting else "down", icon=":material/hourglass_top:" if starting else
                 ":material/cloud_off:", color="orange" if starting else "red")
        utils.show_serving_error(exc)
        return
    st.badge(f"up · {latency * 1000:.0f} ms", icon=":material/check_circle:", color="green")
    try:
        statuses = client.model_status(model)
    except ServingError as exc:
        if exc.status_code == 404:
            st.warning(str(exc), icon=":material/inventory_2:")
        else:
            utils.show_serving_error(exc)
        return
    st.markdown(f"**Versions of `{model}`** (model_version_status)")
    st.dataframe(status_table(statuses), hide_index=True, key="serving_status_table")
    if not available_versions(statuses):
        st.info("No version is AVAILABLE yet: a version is still loading, or its load failed (see the "
                "error message above and the server log).")
        return
    try:
        metadata = client.metadata(model)
    except ServingError as exc:
        utils.show_serving_error(exc)
        return
    version = served_version(metadata)
    st.markdown(f"**Signatures of version {version}** (served to requests without a version)")
    st.dataframe(pd.DataFrame(signature_rows(metadata)), hide_index=True, key="serving_signatures")
    with st.expander("Raw metadata JSON"):
        st.json(metadata)


def render_embedded(url: str) -> None:
    """Start / Stop / Restart for the embedded server, with its status line."""
    local = server_process.is_local_url(url)
    proc = server_process.status()
    st.subheader("Embedded server")
    if FLASH_KEY in st.session_state:
        st.success(st.session_state.pop(FLASH_KEY))
    if proc.running:
        where = f"on {proc.url}" + ("" if proc.url == url else f" (the URL above is {url})")
        st.caption(f"Running {where} · pid {proc.pid} · started {proc.started}")
    elif proc.exit_code is not None:
        st.error(f"The embedded server exited with status {proc.exit_code}: its log below says why. Fix the "
                 "cause (e.g. the port is taken) and press Start.")
    else:
        remote = " The URL above is not on this machine: start that server where it runs."
        st.caption("Not running." + ("" if local else remote))
    foreign = local and not proc.running and utils.get_client().is_up()
    if foreign:
        st.info(f"Another server already answers at {url} (not started by this dashboard): it is used as is.")
    versions = st.number_input("Versions kept loaded", min_value=1, max_value=10, step=1,
                               value=server_process.LOADED_VERSIONS, key="serving_loaded_versions",
                               help="The newest N versions are loaded (TF Serving's latest policy); 2 or "
                               "more lets the Predict page compare versions. Applies at the next start.")
    settings = {"model_name": utils.model_name(), "base_path": utils.base_path(),
                "loaded_versions": int(versions)}
    start_col, stop_col, restart_col = st.columns(3)
    can_start = local and not proc.running and not foreign
    message = None
    try:
        if start_col.button("Start", key="serving_start", disabled=not can_start,
                            icon=":material/play_arrow:"):
            server_process.start(server_process.url_port(url), server_process.bind_host(url), **settings)
            message = ("Starting: the server imports TensorFlow and loads the newest versions, which takes a "
                       "few seconds. The status above refreshes by itself.")
        if stop_col.button("Stop", key="serving_stop", disabled=not proc.running, icon=":material/stop:"):
            server_process.stop()
            message = "Stopped the embedded server."
        if restart_col.button("Restart", key="serving_restart", disabled=not local or foreign,
                              icon=":material/restart_alt:"):
            server_process.restart(server_process.url_port(url), server_process.bind_host(url), **settings)
            message = "Restarting: the status above refreshes by itself."
    except OSError as exc:
        st.error(f"Could not control the embedded server: {exc}")
    if message:
        st.session_state[FLASH_KEY] = message
        st.rerun()  # redraw the status line and buttons for the new state


def render_log() -> None:
    tail = server_process.log_tail(LOG_LINES)
    with st.expander(f"Embedded server log (last {LOG_LINES} lines)", expanded=False):
        st.code(tail or "(no log yet: the embedded server has not been started from this project)",
                language=None)


def render_metrics() -> None:
    with st.expander("Prometheus metrics"):
        if st.button("Fetch metrics", key="serving_fetch_metrics"):
            try:
                st.code(utils.get_client().metrics_text(), language=None)
            except ServingError as exc:
                utils.show_serving_error(exc)


st.title("Serving")
render_target()
url, model = utils.serving_url(), utils.model_name()
poll = st.toggle(f"Refresh every {POLL_S:g} s", value=True, key="serving_poll",
                 help="Pause to read the tables without them being redrawn.")


@st.fragment(run_every=POLL_S if poll else None)
def live_panel() -> None:
    render_health(model)
    render_log()


live_panel()
render_embedded(url)
render_metrics()
