"""One batch-scoring job: read rows, reject the bad ones with a reason, score the rest on Spark.

`score_file` is the library entry point (the CLI and the dashboard call it): it resolves the
model on the driver first (a missing version fails before Spark starts), then runs three Spark
jobs over one cached, validated DataFrame: counts, rejects, predictions. It promises that
`rows_in == scored + rejected` and checks it against what was written, so no row is lost silently.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import shutil
import sys
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pipeline.batch import rows
from pipeline.batch.errors import BatchError
from pipeline.batch.model import ScoringSpec, resolve_model, score_batches

PIPELINE_DIR = Path(__file__).resolve().parents[1]
SHIPPED_MODULES = ("__init__.py", "model_dir.py", "tf_env.py", "batch")
"""What executors import: this package and the two leaf modules it uses, zipped by `ship_code`."""
ARROW_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class BatchProgress:
    """A progress report: `phase` is `reading`, `rejects`, `scoring` or `done`; `fraction` of the
    whole job done so far, from 0 to 1, from Spark's finished tasks."""

    phase: str
    fraction: float
    message: str


@dataclass(frozen=True)
class BatchReport:
    """What a finished job did, as the CLI prints it and the dashboard shows it."""

    rows_in: int
    scored: int
    rejected: int
    version: int
    runtime: str
    features: tuple[str, ...]
    output: str
    rejects: str
    seconds: float

    def summary(self) -> str:
        """One line a person reads: counts, version, files."""
        return (f"rows in: {self.rows_in:,}  scored: {self.scored:,}  rejected: {self.rejected:,}  "
                f"(version {self.version}, {self.runtime}, features {', '.join(self.features)}) "
                f"in {self.seconds:.1f} s -> {self.output}; rejects -> {self.rejects}")


ProgressCallback = Callable[[BatchProgress], None]
_PHASES = {"reading": (0.0, 0.3), "rejects": (0.3, 0.4), "scoring": (0.4, 1.0)}


def default_rejects_path(output: str) -> str:
    """`predictions.parquet` -> `predictions.rejects.parquet`, beside the output."""
    out = output.rstrip("/")
    stem = out[: -len(".parquet")] if out.endswith(".parquet") else out
    return stem + ".rejects.parquet"


PROJECT_ROOT = PIPELINE_DIR.parent
JAVA_INSTALL = "apt-get install openjdk-17-jre-headless"


@dataclass(frozen=True)
class MissingRequirement:
    """Something Spark scoring needs that this machine lacks, and the command that installs it."""

    what: str
    command: str

    def __str__(self) -> str:
        return f"{self.what}: install it with `{self.command}`"


def pip_install_command() -> str:
    """The command that installs PySpark into the interpreter running this code (the one the
    dashboard and `python -m pipeline.batch` use), from the project's folder."""
    python = Path(sys.executable)
    shown = python.relative_to(PROJECT_ROOT) if python.is_relative_to(PROJECT_ROOT) else python
    return f"cd {PROJECT_ROOT} && {shown} -m pip install -r requirements-batch.txt"


def missing_requirements() -> list[MissingRequirement]:
    """What Spark scoring lacks here (PySpark, Java 17+), checked without importing Spark: a page
    says so before offering a form, and `spark_session` refuses with the same words. An install
    made while this process runs is seen on the next call."""
    importlib.invalidate_caches()
    missing = []
    if importlib.util.find_spec("pyspark") is None:
        missing.append(MissingRequirement("PySpark is not installed (about 450 MB, kept out of `make run`)",
                                          pip_install_command()))
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        missing.append(MissingRequirement("Spark needs Java 17 or newer and there is no `java` on PATH nor "
                                          "JAVA_HOME", JAVA_INSTALL))
    return missing


def spark_session(master: str = "local[*]", app_name: str = "pipeline.batch") -> Any:
    """A SparkSession for scoring. With a `local` master it binds loopback only, has no UI, and
    runs Python workers with this interpreter (so they find TensorFlow); with a cluster master
    the cluster's own settings decide those."""
    if missing := missing_requirements():
        raise BatchError("; ".join(str(m) for m in missing))
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")

    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.ui.enabled", "false")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.python.worker.reuse", "true")
               .config("spark.ui.showConsoleProgress", "false")
               # Larger Arrow batches halve the scoring time of narrow rows (1M rows of 2 features,
               # local[2]: 1.8 s at Spark's default 10,000 rows, 0.9 s at 100,000); a batch of
               # 100,000 rows of a few dozen doubles is still only tens of MB per worker.
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(ARROW_BATCH_ROWS)))
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        builder = (builder.config("spark.driver.host", "127.0.0.1")
                   .config("spark.driver.bindAddress", "127.0.0.1")
                   .config("spark.pyspark.python", sys.executable))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def ship_code(spark: Any) -> None:
    """Send the scoring code to the executors (`addPyFile` of a zip), once per SparkContext, so
    workers on other machines, or started from another folder, import the same modules."""
    context = spark.sparkContext
    if getattr(context, "_pipeline_batch_shipped", False):
        return
    from pyspark import SparkFiles

    # Spark deletes its SparkFiles root when the context stops, so the zip never outlives it.
    folder = Path(SparkFiles.getRootDirectory()) / "pipeline-batch-code"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "pipeline_batch.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for name in SHIPPED_MODULES:
            source = PIPELINE_DIR / name
            files = sorted(source.glob("*.py")) if source.is_dir() else [source]
            for file in files:
                archive.write(file, f"pipeline/{file.relative_to(PIPELINE_DIR)}")
    context.addPyFile(str(target))
    context._pipeline_batch_shipped = True


class _Tracker:
    """Reports Spark task progress of one phase to a callback from a polling thread.

    The fraction never goes back: a stage that appears mid-phase adds tasks to the total, which
    would otherwise show as the bar moving backwards."""

    def __init__(self, spark: Any, callback: ProgressCallback | None) -> None:
        self.context, self.callback = spark.sparkContext, callback
        self.reported = 0.0
        self.lock = threading.Lock()
        self.group = f"pipeline-batch-{uuid.uuid4().hex[:8]}"

    def run(self, phase: str, message: str, action: Callable[[], Any]) -> Any:
        group = f"{self.group}-{phase}"
        self.context.setJobGroup(group, message)
        done = threading.Event()
        low, high = _PHASES[phase]
        self._report(phase, low, message)
        poller = threading.Thread(target=self._poll, args=(group, phase, message, low, high, done),
                                  daemon=True)
        if self.callback is not None:
            poller.start()
        try:
            return action()
        finally:
            done.set()
            if poller.is_alive():
                poller.join()
            self._report(phase, high, message)

    def _poll(self, group: str, phase: str, message: str, low: float, high: float,
              done: threading.Event) -> None:
        tracker = self.context.statusTracker()
        while not done.wait(0.5):
            finished = total = 0
            for job_id in tracker.getJobIdsForGroup(group):
                job = tracker.getJobInfo(job_id)
                for stage_id in job.stageIds if job else ():
                    stage = tracker.getStageInfo(stage_id)
                    if stage:
                        finished += stage.numCompletedTasks
                        total += stage.numTasks
            if total:
                self._report(phase, low + (high - low) * finished / total, message)

    def _report(self, phase: str, fraction: float, message: str) -> None:
        if self.callback is None:
            return
        with self.lock:
            self.reported = max(self.reported, round(fraction, 3))
            self.callback(BatchProgress(phase, self.reported, message))


def score_file(input_path: str | Path, output_path: str | Path, *,
               model_base_path: str | Path = "models/linear_model", version: int | None = None,
               features: str = "auto", rejects_path: str | Path | None = None,
               master: str = "local[*]", runtime: str = "auto", spark: Any = None,
               progress: ProgressCallback | None = None) -> BatchReport:
    """Score every row of a CSV or Parquet file with one version and write Parquet.

    The output keeps the input columns and adds `prediction` and `version`; rows that cannot be
    scored go to `rejects_path` (default `<output>.rejects.parquet`) with a `reason`. Both are
    Spark output folders, overwritten. Pass `spark` to reuse a session (it is left running);
    otherwise one is made for `master` and stopped at the end. `progress` is called from this
    thread and from a polling thread, never from both at once, with fractions that never go back.
    Raises BatchError for problems the user can fix (model, version, columns, unreadable input)."""
    started = time.monotonic()
    spec = resolve_model(model_base_path, version, runtime)
    source, output = str(input_path), str(output_path)
    rejects = str(rejects_path) if rejects_path is not None else default_rejects_path(output)
    rows.input_format(source)
    if "://" not in source and not Path(source).exists():
        raise BatchError(f"input {source!r} does not exist")
    own_session = spark is None
    session = spark_session(master) if own_session else spark
    try:
        report = _run(session, spec, source, output, rejects, features, progress)
    finally:
        if own_session:
            session.stop()
    report = replace(report, seconds=time.monotonic() - started)
    if progress is not None:
        progress(BatchProgress("done", 1.0, report.summary()))
    return report


def _run(spark: Any, spec: ScoringSpec, source: str, output: str, rejects: str, features: str,
         progress: ProgressCallback | None) -> BatchReport:
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    ship_code(spark)
    tracker = _Tracker(spark, progress)
    frame, columns = rows.read_rows(spark, source)
    chosen = rows.pick_features(columns, features, spec.n_features)
    spec = replace(spec, features=chosen)
    checked = rows.with_reasons(frame, columns, chosen).persist()
    try:
        counts = tracker.run("reading", f"reading and checking {source}", lambda: checked.agg(
            F.count(F.lit(1)).alias("rows_in"),
            F.sum(F.when(F.col("reason").isNotNull(), 1).otherwise(0)).alias("rejected"),
            *rows.numeric_columns_query(columns, chosen)).first())
        rows_in, rejected = int(counts["rows_in"]), int(counts["rejected"] or 0)
        numeric = {c for c in columns if f"nonnumeric::{c}" in counts.asDict()
                   and not counts[f"nonnumeric::{c}"]}
        bad = checked.filter(F.col("reason").isNotNull()).select(
            *[F.col(f"`{c}`") for c in columns], "reason")
        tracker.run("rejects", f"writing rejects to {rejects}",
                    lambda: bad.write.mode("overwrite").parquet(rejects))
        good = rows.scored_columns(checked.filter(F.col("reason").isNull()), columns, chosen, numeric)
        prediction_type = T.DoubleType() if spec.output_width == 1 else T.ArrayType(T.DoubleType())
        schema = T.StructType(list(good.schema.fields) + [
            T.StructField("prediction", prediction_type), T.StructField("version", T.LongType())])
        scored_frame = good.mapInPandas(functools.partial(score_batches, spec), schema)
        tracker.run("scoring", f"scoring with version {spec.version} into {output}",
                    lambda: scored_frame.write.mode("overwrite").parquet(output))
    finally:
        checked.unpersist()
    scored = spark.read.parquet(output).count()
    written_rejects = spark.read.parquet(rejects).count()
    if scored + written_rejects != rows_in or written_rejects != rejected:
        raise RuntimeError(f"row counts do not add up: read {rows_in}, wrote {scored} predictions "
                           f"and {written_rejects} rejects (expected {rejected})")
    return BatchReport(rows_in=rows_in, scored=scored, rejected=rejected, version=spec.version,
                       runtime=spec.runtime, features=chosen, output=output, rejects=rejects,
                       seconds=0.0)
