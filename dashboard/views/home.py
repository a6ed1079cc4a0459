"""Home: the story in three steps (train → serve → predict) with the live state of each, and a
one-click "Run the tutorial" a presenter can use.

The tutorial trains with the defaults in a child process (as the Train page does), waits until
the server reports the new version AVAILABLE, sends the TF Serving tutorial's rows [[1, 2],
[5, 7]] to that version and shows the answer next to the noiseless truth [3, 6]. Its progress
lives in the session and on disk (the run record), and a fragment polls it, so the page stays
responsive and a refresh of the page does not lose the run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import clients, model_picker, session, tutorial
from dashboard.server_state import serving_url_is_dashboard
from pipeline.client import history
from pipeline.client.errors import ClientError
from pipeline.client.rest import available_versions
from pipeline.runs.process import TrainingProcess
from pipeline.store import records as run_records
from pipeline.store.run_record import RunStatus
from pipeline.store.versions import list_versions
from pipeline.training.data import true_values
from pipeline.training.fit import TrainConfig

TUTORIAL_KEY = "home_tutorial"
ROWS = [[1.0, 2.0], [5.0, 7.0]]
POLL_S = 1.0
# How long the tutorial waits for the server to report the new version AVAILABLE.
SERVE_TIMEOUT_S = 120.0


def server_state() -> tuple[str, list[int], str | None]:
    """``(badge, AVAILABLE versions, problem)`` of the model server at the session's URL."""
    client = clients.get_client()
    try:
        client.ping()
    except ClientError as exc:
        return "down", [], str(exc)
    if serving_url_is_dashboard(client.base_url):
        return "not a model server", [], f"{client.base_url} is this dashboard, not a model server."
    try:
        return "up", available_versions(client.model_status(session.model_name())), None
    except ClientError as exc:
        return "up", [], exc.message


@st.fragment(run_every=5.0)
def render_story() -> None:
    """The three steps side by side, each with what is true right now and where to go
    (refreshed every few seconds)."""
    st.caption(f"Model `{session.model_name()}` · versions in `{session.base_path()}` · "
               f"server {session.serving_url()}")
    versions = list_versions(session.base_path())
    badge, available, problem = server_state()
    entries = history.list_requests(session.base_path(), limit=1)
    train, serve, predict = st.columns(3, border=True)
    with train:
        st.markdown("**1 · Train** a linear regression on `Y = X @ w0 + b0 + noise` and export it as a "
                    "versioned SavedModel.")
        if versions:
            newest = versions[-1]
            st.metric("Newest version", f"{newest.version}", help=f"created {newest.created}")
        else:
            st.caption("No version yet.")
        st.page_link("views/train.py", label="Train page", icon=":material/model_training:",
                     query_params=model_picker.link_params() or None)
    with serve:
        st.markdown("**2 · Serve** it over TF Serving's REST API: the server loads each new version by "
                    "itself.")
        color = {"up": "green", "down": "red"}.get(badge, "red")
        st.badge(badge, color=color)
        if available:
            st.caption(f"AVAILABLE: {', '.join(f'version {v}' for v in available)}")
        elif problem:
            st.caption(problem)
        st.page_link("views/serving.py", label="Serving page", icon=":material/dns:",
                     query_params=model_picker.link_params() or None)
    with predict:
        st.markdown("**3 · Predict**: send rows, compare the answers with the truth.")
        if entries:
            last = entries[0]
            outcome = "failed" if last.get("error") else f"{last.get('latency_ms') or 0:.1f} ms"
            when = last["time"][:19].replace("T", " ")
            st.caption(f"Last request {when} UTC · {last.get('rows') or 0:,} rows · "
                       f"version {last.get('version') or '?'} · {outcome}")
        else:
            st.caption("No request sent yet.")
        st.page_link("views/predict.py", label="Predict page", icon=":material/query_stats:",
                     query_params=model_picker.link_params() or None)


def start_tutorial() -> None:
    """Train with the defaults in a child process and remember the run in the session."""
    cfg = TrainConfig.from_settings(session.settings())
    try:
        job = TrainingProcess(cfg, session.base_path(), export=True).start()
    except (ValueError, OSError) as exc:
        st.error(f"Cannot start the tutorial's run: {exc}")
        return
    st.session_state["train_run"] = job.run_id  # the Train page shows the same run
    st.session_state[TUTORIAL_KEY] = {"run_id": job.run_id, "stage": "training", "job": job,
                                      "started": time.monotonic()}


def advance(state: dict[str, Any]) -> None:
    """Move the tutorial one step on: training → serving → done (or failed), from what the
    run record and the server say now."""
    if state["stage"] == "training":
        job: TrainingProcess = state["job"]
        record = job.record() or run_records.load_run(session.base_path(), state["run_id"])
        if record is None or record.status is RunStatus.RUNNING:
            progress = (record.progress if record is not None else None) or {}
            epochs = record.config.get("epochs", "?") if record is not None else "?"
            state["note"] = f"Training with the defaults: epoch {progress.get('epoch', 0)} of {epochs}"
            return
        if record.status is not RunStatus.SUCCEEDED or record.version is None:
            reason = record.error or record.export_held or f"the run ended {record.status}"
            state.update(stage="failed", note=f"The run did not produce a version: {reason}")
            return
        state.update(stage="serving", version=record.version, served_since=time.monotonic())
    if state["stage"] == "serving":
        try:
            available = available_versions(clients.get_client().model_status(session.model_name()))
        except ClientError as exc:
            available, state["note"] = [], f"Waiting for the server: {exc.message}"
        version = state["version"]
        if version not in available:
            if time.monotonic() - state["served_since"] > SERVE_TIMEOUT_S:
                state.update(stage="failed", note=f"Version {version} was exported but the server did not "
                             f"make it AVAILABLE within {SERVE_TIMEOUT_S:g} s: see the Serving page.")
            else:
                state["note"] = f"Version {version} exported: waiting for the server to make it AVAILABLE"
            return
        send_rows(state)


def send_rows(state: dict[str, Any]) -> None:
    """The tutorial's request, to the new version, kept in the request history."""
    from dashboard import predict_history

    client, target = clients.get_client(), {"version": state["version"]}
    try:
        result = client.predict(session.model_name(), instances=ROWS, **target)
    except ClientError as exc:
        predict_history.record(target, {"instances": ROWS}, len(ROWS), error=exc)
        state.update(stage="failed", note=str(exc))
        return
    predict_history.record(target, result.request, len(ROWS), result=result, version=state["version"])
    try:
        predicted = tutorial.prediction_values(result.values, len(ROWS))
    except ValueError as exc:
        state.update(stage="failed", note=f"The server answered, but not with one prediction per row: {exc}")
        return
    state.update(stage="done", predicted=predicted, latency_s=result.latency_s,
                 seconds=time.monotonic() - state["started"])


def render_answer(state: dict[str, Any]) -> None:
    """The answer next to the truth, as the tutorial's curl prints it."""
    s = session.settings()
    truth = true_values(np.asarray(ROWS), s.true_w, s.true_b)
    st.success(f"Version {state['version']} answered in {state['latency_s'] * 1000:.1f} ms "
               f"({state['seconds']:.0f} s from the click).", icon=":material/check_circle:")
    st.dataframe(pd.DataFrame({"x1": [r[0] for r in ROWS], "x2": [r[1] for r in ROWS],
                               "predicted": state["predicted"], "true (x·w0 + b0)": truth}),
                 hide_index=True, key="home_answer")
    st.caption("The truth is [3, 6]; the model learned from noisy data, so its answers are close, not equal.")


@st.fragment(run_every=POLL_S)
def tutorial_panel() -> None:
    """The tutorial's button and its progress; polls while a run is under way."""
    state = st.session_state.get(TUTORIAL_KEY)
    busy = state is not None and state["stage"] in ("training", "serving")
    if other := model_picker.other_kind_of_model():
        st.warning(other, icon=":material/block:")
    if st.button("Run the tutorial", key="home_run_tutorial", type="primary", disabled=busy or bool(other),
                 icon=":material/play_circle:",
                 help="Trains with the defaults, waits for the server to load the new version, then sends "
                 "[[1, 2], [5, 7]] to it."):
        start_tutorial()
        if TUTORIAL_KEY in st.session_state:
            st.rerun()  # redraw the button disabled while the run is under way
    if state is None:
        return
    advance(state)
    if state["stage"] in ("done", "failed") and not state.get("shown"):
        state["shown"] = True
        st.rerun()  # the whole page: the story above shows the new version and the last request
    if state["stage"] in ("training", "serving"):
        st.info(state.get("note") or "Starting…", icon=":material/hourglass_top:")
    elif state["stage"] == "failed":
        st.error(state["note"], icon=":material/error:")
    else:
        render_answer(state)


st.title("Train → serve → predict")
model_picker.render()
render_story()
st.divider()
st.subheader("Run the tutorial")
st.markdown("One click does what the TF Serving tutorial does by hand: train, export version N, let the "
            "server load it, and `curl` it with `[[1, 2], [5, 7]]`.")
tutorial_panel()
