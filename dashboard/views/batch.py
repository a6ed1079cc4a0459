"""Batch: score a large CSV or Parquet file with one version on Spark, without freezing the dashboard.

The file (uploaded, or a path on this machine) is scored by `pipeline.batch` in a child process
(`dashboard/batch_job.py`) whose progress, counts and output live in a job folder, so the page only
polls files. Finished jobs show rows in / scored / rejected, a sample of the predictions with
residuals against the truth (the true `w0`, `b0` from the version's run record, and the file's own
label column when it has one), and downloads of the predictions and the rejects as Parquet.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from dashboard import batch_job, charts, model_picker, session
from dashboard.input_table import MAX_INTERACTIVE_ROWS
from pipeline.batch import MissingRequirement, missing_requirements
from pipeline.model_dir import version_dirs

JOB_KEY = "batch_job"
SAMPLE_ROWS = 1000
POLL_S = 1.0
# Columns that hold the observed value of a row (`pipeline.batch` keeps them out of the features).
# (No bare strings at module level: Streamlit's magic would print them on the page.)
LABELS = ("y", "label", "target", "truth", "y_true")
NEWEST = "newest"


def versions_on_disk() -> dict[int, Path]:
    """The model's version folders on this machine (empty when the base path does not exist)."""
    try:
        return version_dirs(session.base_path())
    except OSError:
        return {}


def render_missing(missing: list[MissingRequirement]) -> None:
    """What this machine lacks for Spark scoring and the command for each, instead of a form that
    would only fail after the upload. `make run` leaves PySpark out on purpose: it is about 450 MB
    and needs Java, and the rest of the dashboard never uses it."""
    st.warning("Batch scoring runs on Spark, which is not set up on this machine yet:",
               icon=":material/construction:")
    for item in missing:
        st.markdown(f"- {item.what}. Install it with:")
        st.code(item.command, language="bash")
    st.caption("Then reload this page; the dashboard needs no restart. The Predict page scores up to "
               f"{MAX_INTERACTIVE_ROWS:,} rows without Spark meanwhile.")


def rows_text(count: int) -> str:
    """``1 row``, ``1,000 rows``."""
    return f"{count:,} row" + ("" if count == 1 else "s")


def render_form(versions: dict[int, Path], running: bool) -> None:
    """Where the rows come from, the version and the Spark master; starts a job on submit.
    Drawn (disabled) while a job runs too, so the chosen file or path is still there when it
    ends or is cancelled: a widget Streamlit does not draw in a run loses its value."""
    source = st.radio("Rows", ["Upload a file", "A file on this machine"], horizontal=True,
                      key="batch_source", disabled=running)
    upload, path_text = None, ""
    if source == "Upload a file":
        limit = st.get_option("server.maxUploadSize")
        upload = st.file_uploader("CSV (with a header line) or Parquet", type=["csv", "parquet"],
                                  key="batch_upload", disabled=running,
                                  help=f"Uploads are limited to {limit} MB (`server.maxUploadSize`); for a "
                                       "larger file choose **A file on this machine** and give its path.")
    else:
        path_text = st.text_input("Path of a .csv or .parquet file", key="batch_path",
                                  placeholder="/data/rows.parquet", disabled=running)
    version_col, master_col = st.columns(2)
    version = version_col.selectbox("Version", [NEWEST, *sorted(versions, reverse=True)], key="batch_version",
                                    format_func=lambda v: f"the newest ({max(versions)})" if v == NEWEST
                                    else f"version {v}", disabled=running)
    master = master_col.text_input("Spark master", value="local[*]", key="batch_master",
                                   help="local[*] uses every core of this machine; "
                                        "spark://host:7077 a cluster.", disabled=running)
    if not st.button("Score on Spark", key="batch_run", type="primary", icon=":material/play_arrow:",
                     disabled=running):
        return
    chosen = None if version == NEWEST else int(version)
    root = batch_job.jobs_root(session.settings().run_dir)
    try:
        if upload is not None:
            folder = batch_job.start_job(root, base_path=session.base_path(), version=chosen, master=master,
                                         upload=(upload.name, upload.getvalue()))
        elif path_text.strip():
            given = Path(path_text.strip()).expanduser()
            if not given.exists():
                st.error(f"There is no file at {given}.", icon=":material/error:")
                return
            folder = batch_job.start_job(root, base_path=session.base_path(), version=chosen, master=master,
                                         input_path=given)
        else:
            st.error("Choose a file to score first.", icon=":material/error:")
            return
    except OSError as error:
        st.error(f"Could not start the job: {error}", icon=":material/error:")
        return
    st.session_state[JOB_KEY] = str(folder)
    st.rerun()


@st.fragment(run_every=POLL_S)
def render_progress(folder: Path) -> None:
    """A progress bar from the job's files, refreshed every second until the job ends."""
    state = batch_job.read_state(folder)
    if not state.running:
        st.rerun(scope="app")
    st.progress(min(max(state.fraction, 0.0), 1.0), text=f"{state.phase}: {state.message}")
    if st.button("Cancel", key="batch_cancel", icon=":material/stop:"):
        batch_job.cancel(folder)
        st.rerun(scope="app")


def true_weights(version_path: Path) -> tuple[list[float], float, str]:
    """The `w0`, `b0` the version was trained against (its run record), else the project defaults."""
    from pipeline.store.versions import read_run_record

    record = read_run_record(version_path)
    if record is not None and record.true is not None and record.true.w:
        return list(record.true.w), record.true.b, f"version {version_path.name}'s run record"
    settings = session.settings()
    return list(settings.true_w), settings.true_b, "the project defaults"


def with_residuals(sample: pd.DataFrame, features: list[str], w: list[float], b: float) -> pd.DataFrame:
    """The sample plus `truth` (`x @ w0 + b0`, noiseless) and `residual` (prediction - truth), and
    `residual vs <label>` when the file has its own observed values."""
    frame = sample.copy()
    if len(features) == len(w) and pd.api.types.is_numeric_dtype(frame["prediction"]):
        x = frame[features].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
        frame["truth"] = x @ np.asarray(w) + b
        frame["residual"] = frame["prediction"] - frame["truth"]
    for label in (c for c in sample.columns if c.lower() in LABELS):
        frame[f"residual vs {label}"] = frame["prediction"] - pd.to_numeric(frame[label], errors="coerce")
    return frame


def parquet_bytes(folder: str) -> bytes:
    """A Spark Parquet output folder (part files) as one Parquet file, for a download."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pq.read_table(folder), buffer)
    return buffer.getvalue()


def render_report(report: dict[str, Any], versions: dict[int, Path]) -> None:
    """Counts, a sample with residuals against the truth, and the downloads."""
    st.success(report["summary"], icon=":material/check_circle:")
    row = st.container(horizontal=True)  # wraps when narrow instead of cutting the numbers
    row.metric("Rows in", f"{report['rows_in']:,}")
    row.metric("Scored", f"{report['scored']:,}")
    row.metric("Rejected", f"{report['rejected']:,}")
    row.metric("Time", f"{report['seconds']:,.1f} s",
                   help="Wall time of the whole job, Spark's start-up and the workers loading the model "
                        "included: it dominates small files.")
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetDataset(report["output"]).read()
    except (OSError, ValueError) as error:
        st.error(f"Cannot read the predictions at {report['output']}: {error}", icon=":material/error:")
        return
    sample = table.slice(0, SAMPLE_ROWS).to_pandas()
    version_path = versions.get(int(report["version"]), session.base_path() / str(report["version"]))
    w, b, source = true_weights(version_path)
    shown = with_residuals(sample, list(report["features"]), w, b)
    st.subheader("A sample of the predictions")
    st.caption(f"The first {rows_text(len(shown))} of {report['scored']:,} scored; truth = x @ w0 + b0 with "
               f"w0 = {w}, b0 = {b} from {source} (no noise).")
    if "residual" in shown and len(shown):
        res = shown["residual"].abs()
        st.caption(f"|residual| in the sample: mean {res.mean():.4f}, max {res.max():.4f}.")
    st.dataframe(shown, hide_index=True, key="batch_sample")
    if "truth" in shown and len(shown):
        st.plotly_chart(charts.batch_predictions_figure(shown["truth"], shown["prediction"]),
                        key="batch_scatter")
    row = st.container(horizontal=True)
    row.download_button("Download predictions (.parquet)", lambda: parquet_bytes(report["output"]),
                            file_name="predictions.parquet", mime="application/octet-stream",
                            key="batch_download_output", on_click="ignore", icon=":material/download:")
    row.download_button(f"Download rejects (.parquet, {rows_text(report['rejected'])})",
                            lambda: parquet_bytes(report["rejects"]), file_name="rejects.parquet",
                            mime="application/octet-stream", key="batch_download_rejects", on_click="ignore",
                            icon=":material/download:")
    if report["rejected"]:
        rejects = pq.ParquetDataset(report["rejects"]).read().slice(0, 100).to_pandas()
        st.caption(f"Why rows were rejected (the first {rows_text(len(rejects))}):")
        st.dataframe(rejects, hide_index=True, key="batch_rejects")


def main() -> None:
    st.title("Batch")
    model_picker.render()
    st.caption("Score a large CSV or Parquet file with one version on Spark (`python -m pipeline.batch`), "
               "in a child process: millions of rows, a progress bar, and every bad row kept with its "
               "reason. The Predict page is for a few thousand rows at a time.")
    if missing := missing_requirements():
        render_missing(missing)
        return
    versions = versions_on_disk()
    if not versions:
        st.info(f"No versions in {session.base_path()} yet: train one on the Train page (or `make demo`).",
                icon=":material/inventory_2:")
        return
    if JOB_KEY not in st.session_state:  # a new session (a reload) finds the job still running
        running = batch_job.latest_running(batch_job.jobs_root(session.settings().run_dir))
        st.session_state[JOB_KEY] = str(running) if running else None
    folder = st.session_state.get(JOB_KEY)
    state = batch_job.read_state(Path(folder)) if folder and Path(folder).is_dir() else None
    running = state is not None and state.running
    render_form(versions, running)
    if running:
        st.subheader("Scoring…")
        render_progress(Path(folder))
        return
    if state is None:
        return
    if state.error == batch_job.CANCELLED:
        st.info("The batch job was cancelled; nothing was scored.", icon=":material/stop_circle:")
    elif state.error:
        st.error(f"The batch job failed: {state.error}", icon=":material/error:")
    elif state.report:
        render_report(state.report, versions)


main()
