"""Train: choose the data and the optimiser, watch the weights move to the truth, export.

A run is a :class:`pipeline.process_jobs.TrainingProcess`: a child process (Streamlit clears
Keras' session after every script run, which cripples a fit in a thread of this process) whose
state is its run record on disk. This page only polls that record (a fragment every 0.5 s), so
the page never freezes, a refresh finds the run again (its id is in the URL), and Cancel really
stops it. TensorFlow is never imported by this script: the first paint is fast.
"""

from __future__ import annotations

import re
import subprocess
import time
from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, utils
from pipeline import config, registry, runs
from pipeline.process_jobs import TrainingProcess, export_run_in_process
from pipeline.run_report import data_sample, param_names, run_row, weights_rows
from pipeline.training import (
    LR_SCHEDULES,
    MAX_BATCH_SIZE,
    MAX_EPOCHS,
    OPTIMIZERS,
    TrainConfig,
    auto_batch_size,
)

TERMINAL = ("succeeded", "failed", "cancelled")
MAX_PLOT_POINTS = 2_000
RECENT_RUNS = 20
STALE_AFTER_S = 120.0
# True weights and bias are limited to ±FLOAT_BOUND: beyond it the synthetic data stops looking
# like the tutorial's and the default learning rate cannot reach the values in a sane time.
# (Comments, not docstrings: Streamlit's magic would print a bare string on the page.)
FLOAT_BOUND = 1e4

SCHEDULE_HELP = {"cosine": "decays the rate to 1% over the run, so the last epochs settle on the optimum",
                 "constant": "keeps the rate fixed for the whole run"}


@st.cache_resource
def job_registry() -> dict[str, TrainingProcess]:
    """Every training process this dashboard started, by run id (shared by all sessions),
    so a page refresh or a second tab finds a running run and can still cancel it."""
    return {}


def parse_batch_size(text: str) -> int | None:
    """``"auto"`` (or empty) -> ``None``; a whole number like ``64`` or ``1,024`` -> that number.

    ``ValueError`` with a sentence naming the allowed values for anything else."""
    cleaned = text.strip().lower().replace(",", "").replace("_", "")
    if cleaned in ("", "auto"):
        return None
    if not re.fullmatch(r"\d+", cleaned) or not 1 <= int(cleaned) <= MAX_BATCH_SIZE:
        raise ValueError(f"Batch size must be 'auto' or a whole number from 1 to {MAX_BATCH_SIZE:,}, "
                         f"got {text!r}")
    return int(cleaned)


def training_form(running: bool) -> tuple[TrainConfig, bool] | None:
    """The run settings; returns ``(config, export)`` when submitted with valid values,
    shows an ``st.error`` naming the bad value and returns ``None`` otherwise."""
    d = TrainConfig()
    with st.form("train_form"):
        st.markdown("**Data**: `Y = X @ w0 + b0 + noise`, X uniform in [-10, 10]²")
        c1, c2, c3, c4, c5 = st.columns(5)
        samples = c1.number_input("Samples", config.MIN_SAMPLES, config.MAX_SAMPLES, d.samples, step=100,
                                  key="train_samples", help="Rows of synthetic data, 2 to 10,000,000. "
                                  "Millions train in seconds per epoch (the batch size grows with the data).")
        w0 = c2.number_input("True w0[0]", -FLOAT_BOUND, FLOAT_BOUND, float(d.true_w[0]), step=0.5,
                             key="train_w0", help="Weight of the first input feature in the true model.")
        w1 = c3.number_input("True w0[1]", -FLOAT_BOUND, FLOAT_BOUND, float(d.true_w[1]), step=0.5,
                             key="train_w1", help="Weight of the second input feature in the true model.")
        b0 = c4.number_input("True b0", -FLOAT_BOUND, FLOAT_BOUND, float(d.true_b), step=0.5, key="train_b",
                             help="Bias (intercept) of the true model.")
        noise = c5.number_input("Noise std", 0.0, 1000.0, float(d.noise), step=0.5, key="train_noise",
                                help="Standard deviation of the Gaussian noise added to Y. "
                                "0 makes the data exactly linear; the loss cannot go below noise².")
        st.markdown("**Training**")
        c1, c2, c3, c4, c5 = st.columns(5)
        epochs = c1.number_input("Epochs", 1, MAX_EPOCHS, d.epochs, key="train_epochs",
                                 help=f"Passes over the data, 1 to {MAX_EPOCHS:,}.")
        batch_text = c2.text_input("Batch size", "auto", key="train_batch",
                                   help=f"'auto' or a whole number from 1 to {MAX_BATCH_SIZE:,}. Auto is "
                                   f"64 for small data (e.g. {auto_batch_size(800)} at 800 rows) and grows "
                                   "to keep about 100 steps per epoch on large data.")
        optimizer = c3.selectbox("Optimizer", OPTIMIZERS, OPTIMIZERS.index(d.optimizer),
                                 key="train_optimizer",
                                 help="Keras optimizer. Adam converges with the defaults; plain SGD "
                                 "needs a much smaller rate (about 0.001) on this data.")
        lr = c4.number_input("Learning rate", 1e-6, 10.0, d.learning_rate, step=0.01, format="%g",
                             key="train_lr", help="Initial step size, above 0 and at most 10.")
        schedule = c5.selectbox("LR schedule", LR_SCHEDULES, LR_SCHEDULES.index(d.lr_schedule),
                                key="train_schedule",
                                help="; ".join(f"{k}: {v}" for k, v in SCHEDULE_HELP.items()))
        c1, c2, c3 = st.columns([2, 2, 1])
        seed = c1.number_input("Seed", 0, 2**31 - 1, d.seed, key="train_seed",
                               help="Seeds the data, the initial weights and the shuffling: "
                               "the same settings give the same run.")
        export = c2.toggle("Export automatically when done", True, key="train_export",
                           help="On: a succeeded run becomes the next version at once (the model server "
                           "picks it up). Off: inspect the result first, then export it with one click.")
        submitted = c3.form_submit_button("Train", type="primary", disabled=running, key="train_submit",
                                          width="stretch")
    if running:
        st.caption("A run is in progress: cancel it or wait for it to finish to start another.")
    if not submitted:
        return None
    try:
        cfg = TrainConfig(samples=int(samples), true_w=(float(w0), float(w1)), true_b=float(b0),
                          noise=float(noise), seed=int(seed), epochs=int(epochs),
                          batch_size=parse_batch_size(batch_text), optimizer=optimizer,
                          learning_rate=float(lr), lr_schedule=schedule)
        cfg.validate()
    except ValueError as exc:
        st.error(f"Cannot start this run: {exc}")
        return None
    return cfg, bool(export)


def start_job(cfg: TrainConfig, export: bool) -> str | None:
    """Start a run in the background and make it this session's current run; its id, or
    ``None`` after an ``st.error`` (e.g. the model folder cannot be written)."""
    try:
        job = TrainingProcess(cfg, utils.base_path(), export=export).start()
    except (ValueError, OSError) as exc:
        st.error(f"Cannot start this run: {exc}")
        return None
    jobs = job_registry()
    for run_id in [k for k, j in jobs.items() if not j.running][:-50]:  # keep the registry small
        jobs.pop(run_id, None)
    jobs[job.run_id] = job
    select_run(job.run_id)
    return job.run_id


def select_run(run_id: str) -> None:
    """Make ``run_id`` the run this page shows, in the session and in the URL (for refresh)."""
    st.session_state["train_run"] = run_id
    st.query_params["run"] = run_id


def current_record(run_id: str) -> dict[str, Any] | None:
    """The run's record on disk (a run whose process died is recorded as failed by now)."""
    job = job_registry().get(run_id)
    return job.record() if job is not None else runs.load_run(utils.base_path(), run_id)


def is_interrupted(run_id: str) -> bool:
    """A run recorded as running whose record has not changed for ``STALE_AFTER_S``: nobody
    is training it any more (a live run rewrites its record at least every epoch)."""
    try:
        age = time.time() - (runs.runs_dir(utils.base_path()) / f"{run_id}.json").stat().st_mtime
    except OSError:
        return False
    return age > STALE_AFTER_S


def weights_metrics(progress: dict[str, Any], true: dict[str, Any]) -> None:
    """The current value of every parameter, with its distance to the true value."""
    values = [*progress["w"], progress["b"]]
    targets = [*true["w"], true["b"]]
    for col, name, value, target in zip(st.columns(len(values)), param_names(len(values) - 1),
                                        values, targets, strict=True):
        col.metric(name, f"{value:.4f}", f"{value - target:+.4f} from true {target:g}", delta_color="off",
                   delta_arrow="off")


@st.fragment(run_every=0.5)
def live_progress(run_id: str) -> None:
    """The running run, redrawn every 0.5 s from its record; reruns the page once it ends."""
    record = current_record(run_id)
    if record is not None and record.get("status") in TERMINAL:
        st.rerun()
    job = job_registry().get(run_id)
    progress = (record or {}).get("progress")
    if progress is None:
        st.progress(0.0, text="Starting the training process and loading TensorFlow…")
    else:
        st.progress(min(1.0, float(progress["fraction"])),
                    text=f"Epoch {progress['epoch']}/{progress['epochs']} · loss {progress['loss']:.4f} · "
                    f"{progress['elapsed_s']:.1f} s")
        weights_metrics(progress, record["true"])
    if job is not None:
        if st.button("Cancel run", key="train_cancel", icon=":material/stop:", disabled=job.cancel_requested):
            job.cancel()
        if job.cancel_requested:
            st.caption("Cancelling: the run stops after the current batch.")
    else:
        st.caption("This run was started by another process (or before the dashboard restarted); "
                   "it can only be cancelled where it runs.")
    history = (record or {}).get("history") or []
    if history:
        left, right = st.columns(2)
        left.plotly_chart(charts.loss_curve_figure(history, record["config"]["noise"]), key="live_loss")
        trajectory = charts.weights_trajectory_figure(history, record["true"]["w"], record["true"]["b"])
        right.plotly_chart(trajectory, key="live_weights")


def status_banner(record: dict[str, Any]) -> None:
    status = record.get("status")
    run_id = record.get("id")
    epochs = f"{len(record.get('history') or [])}/{record['config']['epochs']} epochs"
    fit_s = (record.get("timings") or {}).get("fit_s")
    took = f" in {fit_s:.1f} s" if fit_s is not None else ""
    if status == "succeeded":
        version = record.get("version")
        exported = f" and was exported as version {version}" if version is not None else ""
        st.success(f"Run {run_id} trained {epochs}{took}{exported}.")
    elif status == "cancelled":
        st.warning(f"Run {run_id} was cancelled after {epochs}. Its partial result is shown below; "
                   "cancelled runs are not exported.")
    elif status == "failed":
        st.error(f"Run {run_id} failed: {record.get('error', 'no error message was recorded')}")


def export_button(record: dict[str, Any]) -> None:
    """"Export as version N" for a succeeded run that is not a version yet."""
    base = utils.base_path()
    next_version = max((v.version for v in registry.list_versions(base)), default=0) + 1
    if st.button(f"Export as version {next_version}", key="train_export_now", type="primary",
                 help="Write this run's model as the next SavedModel version; the model server picks it up."):
        try:
            with st.spinner("Exporting…"):
                version = export_run_in_process(base, record["id"])
        except (ValueError, OSError, subprocess.SubprocessError) as exc:
            st.error(f"Export failed: {exc}")
            return
        st.session_state["train_flash"] = f"Exported run {record['id']} as version {version}."
        st.rerun()


def data_view(record: dict[str, Any]) -> None:
    """The 3-D view of (a sample of) the run's own data with the true and learned planes."""
    learned, true = record["learned"], record["true"]
    if len(true["w"]) != 2:
        st.info(f"The 3-D view needs exactly 2 input features; this run has {len(true['w'])}.")
        return
    x, y = data_sample(record, MAX_PLOT_POINTS)
    st.plotly_chart(charts.data_planes_figure(x, y, true["w"], true["b"], learned["w"], learned["b"]),
                    key="result_planes")
    if len(y) < record["config"]["samples"]:
        st.caption(f"Showing the first {len(y):,} of {record['config']['samples']:,} training rows.")


def show_result(record: dict[str, Any]) -> None:
    """Everything a finished run produced: weights table and chart, curves, data view."""
    status_banner(record)
    rows = weights_rows(record)
    if not rows:
        return
    errors = record.get("errors") or {}
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("max |learned − true|", f"{errors.get('vs_true', float('nan')):.4f}")
    c2.metric("max |learned − OLS|", f"{errors.get('vs_ols', float('nan')):.4f}",
              help="OLS is the best any linear model can do on this exact sample.")
    history = record.get("history") or []
    c3.metric("Final loss (MSE)", f"{history[-1]['loss']:.4f}" if history else "–")
    c4.metric("Batch size", f"{record.get('batch_size', '–')}")
    if record.get("status") == "succeeded" and record.get("version") is None:
        export_button(record)
    table = pd.DataFrame(rows).set_index("parameter")
    st.dataframe(table, key="result_weights",
                 column_config={c: st.column_config.NumberColumn(format="%.4f") for c in table.columns})
    true = record["true"]
    columns = st.columns(3 if history else 1)
    columns[0].plotly_chart(charts.learned_vs_true_figure(record["learned"], true, record.get("ols")),
                            key="result_bars")
    if history:
        loss = charts.loss_curve_figure(history, record["config"]["noise"])
        columns[1].plotly_chart(loss, key="result_loss")
        columns[2].plotly_chart(charts.weights_trajectory_figure(history, true["w"], true["b"]),
                                key="result_trajectory")
    data_view(record)


def recent_runs() -> None:
    """The latest runs on disk, whatever their status, and a way to open one."""
    records = runs.list_runs(utils.base_path())[:RECENT_RUNS]
    st.subheader("Recent runs")
    if not records:
        st.caption("No runs yet: every run you start is recorded here, including failed and cancelled ones.")
        return
    st.dataframe(pd.DataFrame([run_row(r) for r in records]).set_index("run"), key="recent_runs",
                 placeholder="–")
    st.selectbox("Open a run", [r["id"] for r in records], index=None, key="train_open",
                 placeholder="Choose a run id", on_change=_open_chosen_run,
                 help="Show that run's result (or its progress) above.")


def _open_chosen_run() -> None:
    if chosen := st.session_state.get("train_open"):
        select_run(chosen)


def main() -> None:
    st.title("Train")
    st.caption(f"Model folder: `{utils.base_path()}` · versions are picked up by the model server.")
    if flash := st.session_state.pop("train_flash", None):
        st.success(flash)
    run_id = st.session_state.get("train_run") or st.query_params.get("run")
    record = current_record(run_id) if run_id else None
    job = job_registry().get(run_id) if run_id else None
    # the record, not the process, says when a run is over (a process takes a moment to exit)
    running = job is not None and job.running and (record is None or record.get("status") == "running")
    submitted = training_form(running)
    if submitted is not None and start_job(*submitted):
        st.rerun()  # redraw the whole page: the form disables itself while the run trains
    status = (record or {}).get("status")
    if run_id and (record is not None or running):
        st.subheader(f"Run {run_id}")
    if status == "running" and job is None and is_interrupted(run_id):
        st.warning(f"Run {run_id} stopped without finishing: the process that ran it ended (for example "
                   "the dashboard restarted). It stays in the history as 'running'.")
    elif status == "running" or (record is None and running):
        live_progress(run_id)
    elif record is not None:
        show_result(record)
    elif run_id:
        st.info(f"Run {run_id} is not recorded under this model folder.")
    recent_runs()


main()
