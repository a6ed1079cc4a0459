"""Train: choose the data and the optimiser, watch the weights move to the truth, export.

A run is a :class:`pipeline.runs.process.TrainingProcess`: a child process (Streamlit clears
Keras' session after every script run, which cripples a fit in a thread of this process) whose
state is its run record on disk. This page only polls that record (a fragment every 0.5 s), so
the page never freezes, a refresh finds the run again (its id is in the URL), and Cancel really
stops it. TensorFlow is never imported by this script: the first paint is fast.

One run at a time per model folder (:mod:`pipeline.runs.lock`), seen by every tab: while one
trains, every tab shows it (with its settings in the form) and the Train button waits. A
finished run passes through the quality gate (:mod:`pipeline.training.quality`): a diverged
run is a red failure, an unconverged one an amber warning with its numbers and an explicit
"Export anyway", because TF Serving serves the newest version.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import charts, messages, model_picker, server_state, session, train_form
from dashboard.kept_chart import kept_plotly_chart
from pipeline.client import local_server
from pipeline.runs import lock
from pipeline.runs.process import TrainingProcess, export_run_in_process
from pipeline.runs.report import (
    RUN_COLUMN_FORMATS,
    data_sample,
    duration,
    param_names,
    progress_text,
    quality_numbers,
    run_row,
    weights_rows,
)
from pipeline.store import records as run_records
from pipeline.store import serving_config
from pipeline.store.run_record import RunErrors, RunRecord, RunStatus, Weights
from pipeline.store.versions import list_versions, next_version_number
from pipeline.training.fit import TrainConfig
from pipeline.training.quality import WARNING, Verdict

MAX_PLOT_POINTS = 2_000
RECENT_RUNS = 20
STALE_AFTER_S = 120.0

@st.cache_resource
def job_registry() -> dict[str, TrainingProcess]:
    """Every training process this dashboard started, by run id (shared by all sessions),
    so a page refresh or a second tab finds a running run and can still cancel it."""
    return {}


def number_columns(formats: dict[str, str]) -> dict[str, Any]:
    """Streamlit column settings for ``{column: number format}``."""
    return {name: st.column_config.NumberColumn(format=fmt) for name, fmt in formats.items()}


def start_job(cfg: TrainConfig, export: bool) -> str | None:
    """Start a run in the background and make it this session's current run; its id, or
    ``None`` after an ``st.error`` (e.g. the model folder cannot be written)."""
    try:
        job = TrainingProcess(cfg, session.base_path(), export=export).start()
    except lock.TrainingBusy as exc:
        select_run(exc.holder.run_id)
        messages.flash(f"Not started: {exc}. It is shown below.")
        return exc.holder.run_id
    except (ValueError, OSError) as exc:
        st.error(f"Cannot start this run: {exc}")
        return None
    with contextlib.suppress(ValueError, OSError):  # a model this session named: the embedded server
        serving_config.ensure_model(embedded_config(), session.model_name(), session.base_path())
    jobs = job_registry()
    for run_id in [k for k, j in jobs.items() if not j.running][:-50]:  # keep the registry small
        jobs.pop(run_id, None)
    jobs[job.run_id] = job
    select_run(job.run_id)
    return job.run_id


def embedded_config() -> Path:
    """The embedded model server's models.config (written when it starts)."""
    return session.settings().run_dir / local_server.MODELS_CONFIG_NAME


def served_note() -> str:
    """Who serves this folder's versions, in words that are true for the server that runs: the
    embedded server re-reads its models.config and the folder every second; any TF Serving that
    polls the folder serves the newest version."""
    config = embedded_config()
    command = server_state.server_status().command
    if (session.model_name() in serving_config.served_models(config) and server_state.server_status().running
            and "--model_config_file_poll_wait_seconds" in command):
        return "the embedded server checks it every second and serves the newest version"
    return ("a model server that polls this folder (TF Serving, or the embedded one started on the "
            "Serving page) serves the newest version")


def select_run(run_id: str) -> None:
    """Make ``run_id`` the run this page shows, in the session and in the URL (for refresh)."""
    st.session_state["train_run"] = run_id
    st.query_params["run"] = run_id


def find_job(run_id: str) -> TrainingProcess | None:
    """The run's process: one this dashboard started, else one found again from its pid file
    (started before a dashboard restart), so a running run can always be cancelled."""
    jobs = job_registry()
    job = jobs.get(run_id)
    if job is None and (job := TrainingProcess.attach(session.base_path(), run_id)) is not None:
        jobs[run_id] = job
    return job


def current_record(run_id: str) -> RunRecord | None:
    """The run's record on disk (a run whose process died is recorded as failed by now)."""
    job = find_job(run_id)
    return job.record() if job is not None else run_records.load_run(session.base_path(), run_id)


def is_interrupted(run_id: str) -> bool:
    """A run recorded as running whose record has not changed for ``STALE_AFTER_S``: nobody
    is training it any more (a live run rewrites its record at least every epoch)."""
    try:
        age = time.time() - (run_records.runs_dir(session.base_path()) / f"{run_id}.json").stat().st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_S


def weights_metrics(progress: dict[str, Any], true: Weights) -> None:
    """The current value of every parameter, with its distance to the true value."""
    values = [*progress["w"], progress["b"]]
    targets = true.flat
    row = st.container(horizontal=True)  # wraps when narrow instead of cutting numbers to "0.00…"
    for name, value, target in zip(param_names(len(values) - 1), values, targets, strict=True):
        row.metric(name, f"{value:,.4f}", f"{value - target:+,.4f} from true {target:,g}",
                   delta_color="off", delta_arrow="off")


@st.fragment(run_every=0.5)
def live_progress(run_id: str) -> None:
    """The running run, redrawn every 0.5 s from its record; reruns the page once it ends."""
    record = current_record(run_id)
    if record is not None and record.status.ended:
        st.rerun()
    job = find_job(run_id)
    progress = record.progress if record is not None else None
    if progress is None:
        st.progress(0.0, text="Starting the training process and loading TensorFlow…")
    else:
        st.progress(min(1.0, float(progress["fraction"])), text=progress_text(progress))
        if record.true is not None:
            weights_metrics(progress, record.true)
    if job is not None:
        if st.button("Cancel run", key="train_cancel", icon=":material/stop:", disabled=job.cancel_requested):
            job.cancel()
        if job.cancel_requested:
            st.caption("Cancelling: the run stops after the current batch.")
    else:
        st.caption("This run was started by another process that is not a training process of this "
                   "dashboard; it can only be cancelled where it runs.")
    history = record.history if record is not None else []
    if history and record.true is not None:
        row = st.container(horizontal=True)  # kept charts: redrawn in place every 0.5 s, zoom kept
        loss = charts.loss_curve_figure(history, record.config["noise"])
        kept_plotly_chart(loss, key="live_loss", where=row)
        trajectory = charts.weights_trajectory_figure(history, list(record.true.w), record.true.b)
        kept_plotly_chart(trajectory, key="live_weights", where=row)


def _took(record: RunRecord) -> str:
    timings = record.timings
    parts = []
    if timings.get("fit_s") is not None:
        parts.append(f"fit {duration(timings['fit_s'])}")
    if timings.get("end_to_end_s") is not None:
        parts.append(f"{duration(timings['end_to_end_s'])} end to end")
    return f" ({', '.join(parts)})" if parts else ""


def status_banner(record: RunRecord) -> None:
    """Green: converged (and exported). Amber: cancelled, or finished but warned by the quality
    gate (with its numbers and "Export anyway"). Red: failed (diverged or crashed)."""
    status = record.status
    run_id = record.id
    epochs = f"{record.epochs_done:,}/{record.config['epochs']:,} epochs"
    quality = Verdict.from_dict(record.quality)
    numbers = quality_numbers(record)
    version = record.version
    if status is RunStatus.SUCCEEDED and quality is not None and quality.level == WARNING:
        reasons = " ".join(quality.reasons)
        if version is not None:
            outcome = f"It was exported anyway as version {version}, on request."
        else:
            outcome = ("It was not exported: TF Serving serves the newest version (policy `latest`), "
                       "so exporting it would serve it. Export it anyway only if you mean to.")
        st.warning(f"Run {run_id} trained {epochs}{_took(record)}, but the quality gate warns: {reasons} "
                   f"{outcome}", icon=":material/warning:")
        if version is None:
            export_button(record, anyway=True)
    elif status is RunStatus.SUCCEEDED:
        exported = f" and was exported as version {version}" if version is not None else ""
        passed = f" It passed the quality gate: {numbers}." if numbers else ""
        st.success(f"Run {run_id} trained {epochs}{_took(record)}{exported}.{passed}")
        if version is None:
            export_button(record)
    elif status is RunStatus.CANCELLED:
        st.warning(f"Run {run_id} was cancelled after {epochs}. Its partial result is shown below; "
                   "cancelled runs are not exported.")
    elif status is RunStatus.FAILED:
        st.error(f"Run {run_id} failed: {record.error or 'no error message was recorded'} "
                 "Nothing was exported, and the model server still serves the versions it had.",
                 icon=":material/error:")


def export_button(record: RunRecord, anyway: bool = False) -> None:
    """"Export as version N" for a succeeded run that is not a version yet; "Export anyway as
    version N" for one the quality gate warned about."""
    base = session.base_path()
    next_version = next_version_number(base)
    label = f"Export anyway as version {next_version}" if anyway else f"Export as version {next_version}"
    key = "train_export_anyway" if anyway else "train_export_now"
    if st.button(label, key=key, type="secondary" if anyway else "primary",
                 help="Write this run's model as the next SavedModel version; a model server polling this "
                 "folder serves the newest version."):
        try:
            with st.spinner("Exporting…"):
                version = export_run_in_process(base, record.id, anyway=anyway)
        except (ValueError, OSError, subprocess.SubprocessError) as exc:
            st.error(f"Export failed: {exc}")
            return
        messages.flash(f"Exported run {record.id} as version {version}.")
        st.rerun()


def data_view(record: RunRecord) -> None:
    """The 3-D view of (a sample of) the run's own data with the true and learned planes."""
    learned, true = record.learned, record.true
    if learned is None or true is None:
        return
    if len(true.w) != 2:
        st.info(f"The 3-D view needs exactly 2 input features; this run has {len(true.w)}.")
        return
    x, y = data_sample(record, MAX_PLOT_POINTS)
    kept_plotly_chart(charts.data_planes_figure(x, y, list(true.w), true.b, list(learned.w), learned.b),
                      key="result_planes")
    if len(y) < record.config["samples"]:
        st.caption(f"Showing the first {len(y):,} of {record.config['samples']:,} training rows.")


def final_loss_text(record: RunRecord) -> str:
    """For a failed run, the loss the quality gate saw when it stopped (a diverged run: ``NaN``,
    even after epochs that ended with huge finite losses); otherwise the last epoch's loss; "–"
    only when neither was recorded."""
    final = ((record.quality or {}).get("numbers") or {}).get("final_loss")
    if final is not None and record.status is RunStatus.FAILED:
        return charts.short_number(float(final))
    if record.history:
        return charts.short_number(float(record.history[-1]["loss"]))
    return "–"


def show_result(record: RunRecord) -> None:
    """Everything a finished run produced: weights table and chart, curves, data view."""
    status_banner(record)
    rows = weights_rows(record)
    if not rows or record.learned is None or record.true is None:
        return
    errors = record.errors or RunErrors(float("nan"), float("nan"))
    row = st.container(horizontal=True)
    row.metric("max |learned − true|", charts.short_number(errors.vs_true))
    row.metric("max |learned − OLS|", charts.short_number(errors.vs_ols),
              help="OLS is the best any linear model can do on this exact sample.")
    history = record.history
    row.metric("Final loss (MSE)", final_loss_text(record),
              help="NaN: the loss stopped being a number, so the run diverged (see above).")
    batch = record.batch_size
    row.metric("Batch size", f"{batch:,}" if batch is not None else "–")
    table = pd.DataFrame(rows).set_index("parameter")
    # 4 decimals reads well for sane weights; a diverged run's 1e22 gets 4 significant digits instead
    fmt = "%.4f" if all(np.isfinite(v) and abs(v) < 1e6 for v in table.to_numpy().ravel()) else "%.4g"
    st.dataframe(table, key="result_weights",
                 column_config={c: st.column_config.NumberColumn(format=fmt) for c in table.columns})
    true = record.true
    row = st.container(horizontal=True)  # three abreast when wide, one under another when narrow
    # kept charts: another run opened redraws them in place (the 3-D view keeps its WebGL scene)
    kept_plotly_chart(charts.learned_vs_true_figure(record.learned, true, record.ols), key="result_bars",
                      where=row)
    if history:
        kept_plotly_chart(charts.loss_curve_figure(history, record.config["noise"]), key="result_loss",
                          where=row)
        kept_plotly_chart(charts.weights_trajectory_figure(history, list(true.w), true.b),
                          key="result_trajectory", where=row)
    data_view(record)


def recent_runs() -> None:
    """The latest runs on disk, whatever their status, and a way to open one."""
    records = run_records.list_runs(session.base_path())[:RECENT_RUNS]
    st.subheader("Recent runs")
    if not records:
        st.caption("No runs yet: every run you start is recorded here, including failed and cancelled ones.")
        return
    on_disk = {v.version for v in list_versions(session.base_path())}
    st.dataframe(pd.DataFrame([run_row(r, on_disk) for r in records]).set_index("run"), key="recent_runs",
                 placeholder="–", column_config=number_columns(RUN_COLUMN_FORMATS))
    st.selectbox("Open a run", [r.id for r in records], index=None, key="train_open",
                 placeholder="Choose a run id", on_change=_open_chosen_run,
                 help="Show that run's result (or its progress) above.")


def _open_chosen_run() -> None:
    if chosen := st.session_state.get("train_open"):
        select_run(chosen)


def main() -> None:
    st.title("Train")
    model_picker.render()
    st.caption(f"Model folder: `{session.base_path()}` · every export is a new version; {served_note()}.")
    messages.show_flash()
    base = session.base_path()
    holder = lock.holder(base)
    run_id = st.session_state.get("train_run") or st.query_params.get("run")
    if holder is not None and (not run_id or _is_over(run_id)):
        run_id = holder.run_id  # another tab (or a reload) started it: show it, not the defaults
        select_run(run_id)
    record = current_record(run_id) if run_id else None
    job = find_job(run_id) if run_id else None
    # the record, not the process, says when a run is over (a process takes a moment to exit)
    running = job is not None and job.running and (record is None or record.status is RunStatus.RUNNING)
    if record is not None and record.status is RunStatus.RUNNING:
        train_form.load_settings_of(record)
    if other := model_picker.other_kind_of_model():
        st.warning(other, icon=":material/block:")
    submitted = train_form.training_form(running or holder is not None or other is not None)
    if submitted is not None and start_job(*submitted):
        st.rerun()  # redraw the whole page: the form disables itself while the run trains
    if holder is not None and holder.run_id != run_id:
        st.info(f"Run {holder.run_id} is training on this model folder.", icon=":material/sync:")
        if st.button(f"Show run {holder.run_id}", key="train_show_running"):
            select_run(holder.run_id)
            st.rerun()
    status = record.status if record is not None else None
    if run_id and (record is not None or running):
        st.subheader(f"Run {run_id}")
    if status is RunStatus.RUNNING and job is None and is_interrupted(run_id):
        st.warning(f"Run {run_id} stopped without finishing: the process that ran it ended (for example "
                   "the dashboard restarted). It stays in the history as 'running'.")
    elif status is RunStatus.RUNNING or (record is None and running):
        live_progress(run_id)
    elif record is not None:
        show_result(record)
    elif run_id:
        st.info(f"Run {run_id} is not recorded under this model folder.")
    recent_runs()


def _is_over(run_id: str) -> bool:
    """True when ``run_id``'s record says it ended (so a running run elsewhere takes its place)."""
    record = run_records.load_run(session.base_path(), run_id)
    return record is None or record.status.ended


main()
