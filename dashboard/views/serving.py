"""Serving: which model server the dashboard talks to, whether it is up, what it serves, how busy.

The top of the page chooses the server URL (kept for every page in the session; the model is
picked in the sidebar) and shows both endpoints (REST URL, gRPC target). A fragment polls the server every
few seconds: health and latency, the ``model_version_status`` of every version, the metadata
(signatures) of the version a request without a version would reach, request rate, errors and
latency percentiles charted from the server's Prometheus metrics (a short rolling window kept in
the session), and the embedded server's controls (start, stop, restart, log), enabled only when
the URL is on this machine. Everything that depends on the server's state is inside the
fragment, so no "starting" note outlives the start. A real TF Serving at the URL shows the same
way; only the controls do not apply to it.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import streamlit as st

from dashboard import charts, clients, messages, model_picker, server_log, server_state, session
from dashboard.kept_chart import kept_plotly_chart
from pipeline.client import local_server
from pipeline.client.errors import ClientError
from pipeline.client.rest import available_versions, served_version, signature_rows, state_words
from pipeline.client.server_metrics import Scrape, parse_scrape, window_rows
from pipeline.client.urls import EXAMPLE_URL, bind_host, is_local_url, normalize_url, url_port

POLL_S = 2.0
# Timeout of the gRPC health probe, so a silent target never slows the poll.
GRPC_PROBE_S = 1.0
LOG_LINES = 40
# Metric readings kept (two minutes at the poll interval).
WINDOW = 60
# Readings further apart than this were not taken by one continuous poll: the window starts afresh.
GAP_S = 3 * POLL_S
URL_INPUT = "serving_url_input"
PROBLEM_KEY = "serving_input_problem"
STOPPED_KEY = server_state.STOPPED_KEY
SCRAPES_KEY, SCRAPES_MODEL_KEY = "serving_scrapes", "serving_scrapes_model"
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def checked_url(text: str) -> str:
    """``text`` as a server URL (see ``normalize_url``) whose host is a real host name or IP
    address: ``not a url`` would otherwise pass as the host ``not a url``."""
    url = normalize_url(text)
    host = urlsplit(url).hostname or ""
    if not (HOSTNAME.match(host) or ":" in host or re.fullmatch(r"[0-9.]+", host)):
        raise ValueError(f"{text!r} is not a server URL: {host!r} is not a host name. Use the form "
                         f"http://host:port, e.g. {EXAMPLE_URL}")
    return url


def _apply_url() -> None:
    try:
        st.session_state[session.URL_KEY] = checked_url(st.session_state[URL_INPUT])
        st.session_state.pop(PROBLEM_KEY, None)
        st.session_state.pop(SCRAPES_KEY, None)  # readings of another server
    except ValueError as exc:
        st.session_state[PROBLEM_KEY] = str(exc)


def status_table(statuses: list[dict[str, Any]]) -> pd.DataFrame:
    """``model_version_status`` as rows: version, state, error code and message."""
    return pd.DataFrame([{
        "version": int(s.get("version", 0)), "state": state_words(str(s.get("state", ""))),
        "error_code": s.get("status", {}).get("error_code", ""),
        "error_message": s.get("status", {}).get("error_message", ""),
    } for s in statuses], columns=["version", "state", "error_code", "error_message"])


def render_target() -> None:
    """The URL input (the model is picked in the sidebar); a bad URL is reported and the previous
    one kept."""
    st.session_state.setdefault(URL_INPUT, session.serving_url())
    st.text_input("Model server URL (REST)", key=URL_INPUT, on_change=_apply_url,
                  help="TF Serving's REST API, e.g. http://127.0.0.1:8501 (the embedded server) or a "
                  "tensorflow/serving container. The model is picked in the sidebar.")
    if PROBLEM_KEY in st.session_state:
        st.error(st.session_state[PROBLEM_KEY])
    s = session.settings()
    st.caption(f"Endpoints: REST `{session.serving_url()}` · gRPC `{s.grpc_target}` (TF Serving's ports: "
               f"REST {s.rest_port}, gRPC {s.grpc_port}; this dashboard: {st.get_option('server.port')}).")


def render_down(exc: ClientError, url: str) -> None:
    """No answer: starting, stopped on purpose, or down, each said as what it is."""
    word = server_state.down_word(exc, url)
    if word == "starting":
        st.badge("starting", icon=":material/hourglass_top:", color="orange")
    elif word == "stopped":
        st.badge("stopped", icon=":material/stop_circle:", color="gray")
        st.info("You stopped the embedded server. Press Start below to serve again.", icon=":material/info:")
        return
    else:
        st.badge("down", icon=":material/cloud_off:", color="red")
    messages.show_serving_error(exc, on_serving_page=True)


def render_health(model: str) -> bool:
    """Health badge, version table and metadata; each failure shown as a readable message.
    True when a model server answers."""
    client = clients.get_client()
    try:
        latency = client.ping()
    except ClientError as exc:
        render_down(exc, client.base_url)
        return False
    if server_state.serving_url_is_dashboard(client.base_url):
        st.badge("not a model server", icon=":material/link_off:", color="red")
        messages.show_dashboard_url_error(client.base_url)
        return False
    st.session_state.pop(STOPPED_KEY, None)
    st.badge(f"up · {latency * 1000:.0f} ms", icon=":material/check_circle:", color="green")
    try:
        statuses = client.model_status(model)
    except ClientError as exc:
        if exc.status_code == 404:
            st.warning(str(exc), icon=":material/inventory_2:")
        else:
            messages.show_serving_error(exc, on_serving_page=True)
        return True
    st.markdown(f"**Versions of `{model}`** (model_version_status)")
    st.dataframe(status_table(statuses), hide_index=True, key="serving_status_table")
    if not available_versions(statuses):
        st.info("No version is AVAILABLE yet: a version is still loading, or its load failed (see the "
                "error message above and the server log).")
        return True
    try:
        metadata = client.metadata(model)
    except ClientError as exc:
        messages.show_serving_error(exc, on_serving_page=True)
        return True
    version = served_version(metadata)
    st.markdown(f"**Signatures of version {version}** (served to requests without a version)")
    st.dataframe(pd.DataFrame(signature_rows(metadata)), hide_index=True, key="serving_signatures")
    with st.expander("Raw metadata JSON"):
        st.json(metadata)
    return True


def render_grpc() -> None:
    """The gRPC endpoint's health (grpc.health.v1 when the server offers it)."""
    client = clients.get_grpc_client(timeout=GRPC_PROBE_S)
    try:
        status = client.health()
    except ClientError as exc:
        if exc.message.startswith("UNIMPLEMENTED"):
            st.badge("gRPC answers · no health service", icon=":material/check_circle:", color="green")
            st.caption(f"gRPC `{client.target}` answers; its health service is off "
                       "(`--enable_grpc_healthcheck_service` turns it on).")
        else:
            st.badge("gRPC down", icon=":material/cloud_off:", color="gray")
            st.caption(f"gRPC `{client.target}`: {exc.message}. REST is enough for this dashboard; gRPC is "
                       "for clients using the official stubs (and the Predict page's gRPC choice).")
        return
    serving = status == "SERVING"
    st.badge(f"gRPC {status}", icon=":material/check_circle:" if serving else ":material/warning:",
             color="green" if serving else "orange")


def read_metrics(model: str) -> list[Scrape] | str:
    """This session's rolling window of metric readings with a new one appended, or why there
    is none (the server exports no metrics, or not in Prometheus' format)."""
    try:
        text = clients.get_client().metrics_text()
        scrape = parse_scrape(text, model, time.time())
    except ClientError as exc:
        return str(exc)
    except ValueError as exc:
        return f"The metrics are not in Prometheus' text format: {exc}"
    kept = st.session_state.get(SCRAPES_KEY, [])
    if st.session_state.get(SCRAPES_MODEL_KEY) != model:  # readings of another model
        kept = []
    elif kept and scrape.time - kept[-1].time > GAP_S:
        kept = []  # the server was stopped, the page left or paused: chart from now, not across the gap
    scrapes = [*kept, scrape][-WINDOW:]
    st.session_state[SCRAPES_KEY], st.session_state[SCRAPES_MODEL_KEY] = scrapes, model
    return scrapes


def render_metrics(model: str) -> None:
    """Request rate, errors and latency percentiles over the last readings, as charts."""
    st.subheader("Traffic")
    scrapes = read_metrics(model)
    if isinstance(scrapes, str):
        st.caption(f"No metrics: {scrapes}")
        return
    latest = scrapes[-1]
    row = st.container(horizontal=True)  # wraps when narrow instead of cutting the numbers
    row.metric("Requests answered", f"{latest.answered:,.0f}",
               help="Inference requests (predict, classify, regress) answered OK, plus every failed request; "
               "status and metadata calls, such as this page's own polling, are left out.")
    row.metric("Errors", f"{latest.errors:,.0f}")
    rows = window_rows(scrapes)
    if not rows:
        row.metric("Requests/s", "…")
        st.caption(f"Charts start with the next reading (every {POLL_S:g} s while 'Refresh' is on).")
        return
    row.metric("Requests/s", f"{rows[-1]['requests/s']:,.1f}")
    left, right = st.columns(2)
    left.caption("Inference requests and errors per second")
    # kept charts: each poll redraws the same chart in place instead of rebuilding it
    kept_plotly_chart(charts.traffic_figure(rows), "serving_traffic_chart", left)
    right.caption("Latency percentiles of the requests answered in each interval (ms)")
    if all(row.get(p) is None for row in rows for p in charts.LATENCY_COLORS):
        right.info("No inference request in this window yet: latency is charted once requests arrive "
                   "(send some from the Predict page).", icon=":material/query_stats:")
    else:
        kept_plotly_chart(charts.latency_figure(rows), "serving_latency_chart", right)
    st.caption(f"From the server's Prometheus metrics, the last {len(scrapes)} readings "
               f"(up to {WINDOW}, every {POLL_S:g} s).")


def render_embedded(url: str) -> None:
    """Start / Stop / Restart for the embedded server, with its status line."""
    local = is_local_url(url)
    proc = server_state.server_status()
    st.subheader("Embedded server")
    messages.show_flash()
    if proc.running:
        where = f"on {proc.url}" + ("" if proc.url == url else f" (the URL above is {url})")
        st.caption(f"Running {where} · pid {proc.pid} · started {proc.started}")
    elif proc.exit_code is not None and not st.session_state.get(STOPPED_KEY):
        st.error(f"The embedded server exited with status {proc.exit_code}: its log below says why. Fix the "
                 "cause (e.g. the port is taken) and press Start.")
    else:
        remote = " The URL above is not on this machine: start that server where it runs."
        st.caption("Not running." + ("" if local else remote))
    foreign = local and not proc.running and clients.get_client().is_up()
    if foreign:
        st.info(f"Another server already answers at {url} (not started by this dashboard): it is used as is.")
    versions = st.number_input("Versions kept loaded", min_value=1, max_value=10, step=1,
                               value=local_server.LOADED_VERSIONS, key="serving_loaded_versions",
                               help="The newest N versions are loaded (TF Serving's latest policy); 2 or "
                               "more lets the Predict page compare versions. Applies at the next start.")
    run_dir = session.settings().run_dir
    settings = {"model_name": session.model_name(), "base_path": session.base_path(),
                "loaded_versions": int(versions), "run_dir": run_dir}
    start_col, stop_col, restart_col = st.columns(3)
    can_start = local and not proc.running and not foreign
    message = None
    try:
        if start_col.button("Start", key="serving_start", disabled=not can_start,
                            icon=":material/play_arrow:"):
            started = local_server.start(url_port(url), bind_host(url), **settings)
            st.session_state.pop(STOPPED_KEY, None)
            pid = f" (pid {started.pid})" if getattr(started, "pid", None) else ""
            message = (f"Started the embedded server{pid}: the badge above turns green once it has imported "
                       "TensorFlow and loaded the newest versions.")
        if stop_col.button("Stop", key="serving_stop", disabled=not proc.running, icon=":material/stop:"):
            local_server.stop(run_dir=run_dir)
            st.session_state[STOPPED_KEY] = True
            message = "Stopped the embedded server."
        if restart_col.button("Restart", key="serving_restart", disabled=not local or foreign,
                              icon=":material/restart_alt:"):
            local_server.restart(url_port(url), bind_host(url), **settings)
            st.session_state.pop(STOPPED_KEY, None)
            message = "Restarted the embedded server: the badge above turns green once it is up."
    except OSError as exc:
        st.error(f"Could not control the embedded server: {exc}")
    if message:
        messages.flash(message)
        st.rerun()  # redraw the status line and buttons for the new state


def render_log() -> None:
    """The embedded server's log tail, without TensorFlow's C++ info noise."""
    log = local_server.log_tail(LOG_LINES, run_dir=session.settings().run_dir)
    tail, hidden = server_log.without_cpp_noise(log)
    with st.expander(f"Embedded server log (last {LOG_LINES} lines)", expanded=False):
        st.code(tail or "(no log yet: the embedded server has not been started from this project)",
                language=None)
        if hidden:
            st.caption(f"{hidden} TensorFlow C++ info line(s) hidden (oneDNN, CUDA stubs); the full log is "
                       f"`{server_state.server_status().log_path}`.")


def render_raw_metrics() -> None:
    with st.expander("Raw Prometheus metrics"):
        if st.button("Fetch metrics", key="serving_fetch_metrics"):
            try:
                st.code(clients.get_client().metrics_text(), language=None)
            except ClientError as exc:
                messages.show_serving_error(exc, on_serving_page=True)


st.title("Serving")
model_picker.render()
render_target()
url, model = session.serving_url(), session.model_name()
poll = st.toggle(f"Refresh every {POLL_S:g} s", value=True, key="serving_poll",
                 help="Pause to read the tables without them being redrawn.")


@st.fragment(run_every=POLL_S if poll else None)
def live_panel() -> None:
    if render_health(model):
        render_grpc()
        render_metrics(model)
    render_embedded(url)
    render_log()


live_panel()
render_raw_metrics()
