"""Home: the story in three steps (train → serve → predict) with the live state of each, and a
one-click "Run the tutorial" a presenter can use.

The tutorial trains with the defaults in a child process (as the Train page does), waits until
the server reports the new version AVAILABLE, sends the TF Serving tutorial's rows [[1, 2],
[5, 7]] to that version and shows the answer next to the noiseless truth [3, 6]. Its state (the
run, the stage, the pending request and the answer) lives on disk (:mod:`dashboard.tutorial_run`), and
a fragment polls it, so the page stays responsive and a reload, a second tab or a restarted
dashboard finds the tutorial again and finishes it. While another run trains on the model folder
(one at a time), Home says so and the button waits.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import clients, model_picker, session, tutorial, tutorial_run
from dashboard.server_state import down_word, serving_url_is_dashboard
from dashboard.tutorial_run import Stage, Tutorial
from pipeline.client import history
from pipeline.client.errors import ClientError
from pipeline.client.rest import available_versions
from pipeline.runs import lock
from pipeline.runs.process import TrainingProcess
from pipeline.store import records as run_records
from pipeline.store.run_record import RunStatus
from pipeline.store.versions import list_versions
from pipeline.training.data import true_values
from pipeline.training.fit import TrainConfig

SEEN_KEY = "home_tutorial_seen"
ROWS = [[1.0, 2.0], [5.0, 7.0]]
POLL_S = 1.0
# How long the tutorial waits for the server to report the new version AVAILABLE.
SERVE_TIMEOUT_S = 120.0
BADGE_COLORS = {"up": "green", "starting": "orange", "stopped": "gray"}


@st.cache_resource
def job_registry() -> dict[tuple[str, str], TrainingProcess]:
    """The tutorials' training processes this dashboard started, by (model folder, run id), shared
    by all sessions: a reload finds the process (to tell a crash from a run still training)."""
    return {}


def server_state() -> tuple[str, list[int], str | None]:
    """``(badge, AVAILABLE versions, problem)`` of the model server at the session's URL; the
    badge is ``up``, ``starting`` (the embedded server is still importing TensorFlow),
    ``stopped`` (stopped on the Serving page), ``down`` or ``not a model server``."""
    client = clients.get_client()
    try:
        client.ping()
    except ClientError as exc:
        word = down_word(exc, client.base_url)
        if word == "starting":
            return word, [], ("The embedded server is starting: it imports TensorFlow and loads the newest "
                              "versions.")
        if word == "stopped":
            return word, [], "You stopped the embedded server: Start it on the Serving page."
        return word, [], str(exc)
    if serving_url_is_dashboard(client.base_url):
        return "not a model server", [], f"{client.base_url} is this dashboard, not a model server."
    try:
        return "up", available_versions(client.model_status(session.model_name())), None
    except ClientError as exc:
        return "up", [], exc.message


def training_now() -> str | None:
    """A sentence about the run training on this model folder now (any tab, the CLI), or None."""
    holder = lock.holder(session.base_path())
    if holder is None:
        return None
    record = run_records.load_run(session.base_path(), holder.run_id)
    progress = (record.progress if record is not None else None) or {}
    where = f": epoch {progress['epoch']:,} of {progress['epochs']:,}" if "epochs" in progress else ""
    return f"Run {holder.run_id} is training{where}."


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
        if training := training_now():
            st.caption(f":material/sync: {training}")
        st.page_link("views/train.py", label="Train page", icon=":material/model_training:",
                     query_params=model_picker.link_params() or None)
    with serve:
        st.markdown("**2 · Serve** it over TF Serving's REST API: the server loads each new version by "
                    "itself.")
        st.badge(badge, color=BADGE_COLORS.get(badge, "red"))
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
    """Train with the defaults in a child process and write the new tutorial to disk (unless one
    is already under way, from another tab)."""
    base = session.base_path()
    cfg = TrainConfig.from_settings(session.settings())
    try:
        with tutorial_run.locked(base):
            current = tutorial_run.load(base)
            if current is not None and current.stage.busy:
                return
            job = TrainingProcess(cfg, base, export=True).start()
            job_registry()[(str(base), job.run_id)] = job
            tutorial_run.save(base, Tutorial(job.run_id))
    except lock.TrainingBusy as exc:
        st.error(f"Cannot start the tutorial: run {exc.holder.run_id} is training on this model folder "
                 "(one run at a time). Wait for it, or cancel it on the Train page.", icon=":material/block:")
        return
    except (ValueError, OSError) as exc:
        st.error(f"Cannot start the tutorial's run: {exc}", icon=":material/error:")
        return
    st.session_state["train_run"] = job.run_id  # the Train page shows the same run


def advance(t: Tutorial) -> None:
    """Move the tutorial one step on: training → serving → done (or failed), from what the run
    record, the training lock and the server say now (call under :func:`tutorial_run.locked`)."""
    if t.stage is Stage.TRAINING:
        check_training(t)
    if t.stage is Stage.SERVING:
        try:
            available = available_versions(clients.get_client().model_status(session.model_name()))
        except ClientError as exc:
            available, t.note = [], f"Waiting for the server: {exc.message}"
        if t.version not in available:
            if time.time() - (t.served_since or t.started) > SERVE_TIMEOUT_S:
                t.end(Stage.FAILED, f"Version {t.version} was exported but the server did not make it "
                      f"AVAILABLE within {SERVE_TIMEOUT_S:g} s: see the Serving page.")
            elif not t.note.startswith("Waiting for the server"):
                t.note = f"Version {t.version} exported: waiting for the server to make it AVAILABLE"
            return
        send_rows(t)


def check_training(t: Tutorial) -> None:
    """The training stage: still training (with its epoch), ended without a version (failed), or
    exported (on to serving). A run whose process is gone without a final record failed."""
    base = session.base_path()
    job = job_registry().get((str(base), t.run_id))
    record = job.record() if job is not None else run_records.load_run(base, t.run_id)
    if record is None or record.status is RunStatus.RUNNING:
        holder = lock.holder(base)
        if job is None and (holder is None or holder.run_id != t.run_id):
            record = run_records.load_run(base, t.run_id)  # it may have ended a moment ago
            if record is None or record.status is RunStatus.RUNNING:
                t.end(Stage.FAILED, f"The tutorial's run {t.run_id} stopped without finishing: its training "
                      "process ended (for example, the dashboard restarted). Run the tutorial again.")
                return
        else:
            progress = (record.progress if record is not None else None) or {}
            epochs = record.config.get("epochs", "?") if record is not None else "?"
            t.note = f"Training with the defaults: epoch {progress.get('epoch', 0)} of {epochs}"
            return
    if record.status is not RunStatus.SUCCEEDED or record.version is None:
        reason = record.error or record.export_held or f"the run ended {record.status}"
        t.end(Stage.FAILED, f"The run did not produce a version: {reason}")
        return
    t.stage, t.version, t.served_since, t.note = Stage.SERVING, record.version, time.time(), ""


def send_rows(t: Tutorial) -> None:
    """The tutorial's request, to the new version, kept in the request history."""
    from dashboard import predict_history

    client, target = clients.get_client(), {"version": t.version}
    try:
        result = client.predict(session.model_name(), instances=ROWS, **target)
    except ClientError as exc:
        predict_history.record(target, {"instances": ROWS}, len(ROWS), error=exc)
        t.end(Stage.FAILED, str(exc))
        return
    predict_history.record(target, result.request, len(ROWS), result=result, version=t.version)
    try:
        predicted = tutorial.prediction_values(result.values, len(ROWS))
    except ValueError as exc:
        t.end(Stage.FAILED, f"The server answered, but not with one prediction per row: {exc}")
        return
    t.end(Stage.DONE, predicted=predicted, latency_s=result.latency_s, seconds=time.time() - t.started)


def render_answer(t: Tutorial) -> None:
    """The answer next to the truth, as the tutorial's curl prints it."""
    s = session.settings()
    truth = true_values(np.asarray(ROWS), s.true_w, s.true_b)
    when = datetime.fromtimestamp(t.finished or t.started, UTC).strftime("%H:%M:%S UTC")
    st.success(f"Version {t.version} answered in {(t.latency_s or 0) * 1000:.1f} ms "
               f"({t.seconds or 0:.0f} s from the click, at {when}).", icon=":material/check_circle:")
    st.dataframe(pd.DataFrame({"x1": [r[0] for r in ROWS], "x2": [r[1] for r in ROWS],
                               "predicted": t.predicted, "true (x·w0 + b0)": truth}),
                 hide_index=True, key="home_answer")
    st.caption("The truth is [3, 6]; the model learned from noisy data, so its answers are close, not equal.")


def current_tutorial() -> Tutorial | None:
    """The model folder's tutorial, moved one step on if it is under way (saved when it changed)."""
    base = session.base_path()
    if (t := tutorial_run.load(base)) is None or not t.stage.busy:
        return t
    with tutorial_run.locked(base):
        t = tutorial_run.load(base)  # another tab may have moved it on meanwhile
        if t is not None and t.stage.busy:
            before = t.to_json()
            advance(t)
            if t.to_json() != before:
                tutorial_run.save(base, t)
    return t


@st.fragment(run_every=POLL_S)
def tutorial_panel() -> None:
    """The tutorial's button and its progress; polls while a run is under way."""
    t = current_tutorial()
    busy = t is not None and t.stage.busy
    if kind := model_picker.other_kind_of_model():
        st.warning(kind, icon=":material/block:")
    other = None if busy else training_now()
    if st.button("Run the tutorial", key="home_run_tutorial", type="primary",
                 disabled=busy or bool(kind) or bool(other),
                 icon=":material/play_circle:",
                 help="Trains with the defaults, waits for the server to load the new version, then sends "
                 "[[1, 2], [5, 7]] to it."):
        start_tutorial()
        if (started := tutorial_run.load(session.base_path())) is not None and started.stage.busy:
            st.rerun()  # redraw the button disabled while the run is under way
    if other:
        st.info(f"{other} One run at a time per model folder: the tutorial can start when it ends (the "
                "Train page shows it, and can cancel it).", icon=":material/sync:")
    if t is None:
        return
    seen = st.session_state.get(SEEN_KEY)
    st.session_state[SEEN_KEY] = (t.run_id, str(t.stage))
    if not busy and seen is not None and seen[0] == t.run_id and seen[1] != str(t.stage):
        st.rerun()  # it just ended: the whole page, so the story above shows the version and request
    if busy:
        st.info(t.note or "Starting the training process…", icon=":material/hourglass_top:")
    elif t.stage is Stage.FAILED:
        st.error(t.note, icon=":material/error:")
    else:
        render_answer(t)


st.title("Train → serve → predict")
model_picker.render()
render_story()
st.divider()
st.subheader("Run the tutorial")
st.markdown("One click does what the TF Serving tutorial does by hand: train, export version N, let the "
            "server load it, and `curl` it with `[[1, 2], [5, 7]]`.")
tutorial_panel()
