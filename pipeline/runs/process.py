"""TensorFlow work for the dashboard, each piece in its own process.

Why not a thread in the dashboard: after *every* script run (every fragment tick, every
click, in every session) Streamlit's ``ScriptRunner`` calls ``keras.backend.clear_session()``
and ``gc.collect(2)`` (``streamlit/runtime/scriptrunner/script_runner.py``,
``_clean_problem_modules``). A Keras ``fit`` in a thread of that process keeps losing its
traced train function: measured, 100 epochs of 800 rows took 47 s there instead of 1.5 s, and
the run stalled for half a minute in a ``tf.data`` iterator destructor. In a child process the
run is as fast as on the command line, and the dashboard process never even imports Keras.

:class:`TrainingProcess` (``start``, ``cancel``, ``running``, ``record``) runs the very same
:func:`pipeline.runs.job.run_training` in ``python -m pipeline.runs.process``, so the run record
on disk stays the one source of truth. Cancel is SIGTERM, which the child turns into the cancel
event (the run ends "cancelled" after the current batch). A child that dies without a final
record (killed, out of memory) is recorded as failed by the parent, so no run is left "running"
forever.

No orphans: the child's process record (pid, start time, command line) is the model folder's
training lock (:mod:`pipeline.runs.lock`) from the moment it starts, so a dashboard that
restarted finds it again (:meth:`TrainingProcess.attach`) and can still cancel it, and a pid is
signalled only while ``/proc`` shows that very process (:class:`pipeline.state.ProcessRecord`).
The record goes when the run ends; its output stays in ``<base>/runs/.<id>.log`` for the newest
:data:`LOGS_KEPT` runs. The child also watches its parent (:mod:`pipeline.lifeline`, as the
server does): if the dashboard dies without stopping it, the run cancels itself, so it never
exports a version nobody watches.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from pipeline import lifeline, state
from pipeline.runs import lock
from pipeline.settings import PROJECT_ROOT
from pipeline.store import records, versions
from pipeline.store.run_record import RunRecord, RunStatus, Weights
from pipeline.training.fit import TrainConfig

LOGS_KEPT = 20
"""Training logs (``runs/.<id>.log``) kept per model folder; older ones go when a run starts."""
CHILD_TIMEOUT_S = 600.0
"""How long an export or a demo seeding may take before it is reported as hung."""


def _child_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}


def log_path(base_path: Path | str, run_id: str) -> Path:
    """Where a run's process writes its output (hidden, next to the run record)."""
    return records.runs_dir(base_path) / f".{run_id}.log"


def prune_logs(base_path: Path | str, keep: int = LOGS_KEPT) -> list[Path]:
    """Delete all but the newest ``keep`` training logs of a model folder (run ids start with
    their UTC start time, so names sort oldest first), and the per-run pid files older versions
    left behind (``runs/.<id>.pid``, read by nothing now); return what was deleted."""
    folder = records.runs_dir(base_path)
    old_logs = state.prune_oldest(sorted(folder.glob(".*.log")), keep)
    return old_logs + state.prune_oldest(folder.glob(".*.pid"), 0)


class TrainingProcess:
    """One training run in a child process; its state is the run record on disk.

    ``start()`` returns at once; ``cancel()`` stops the run after the current batch;
    ``record()`` reads the latest record. A bad config or an unwritable base path raises
    ``ValueError`` in the constructor, before any process starts.
    """

    def __init__(self, cfg: TrainConfig, base_path: Path | str, export: bool = True, *,
                 run_id: str | None = None) -> None:
        cfg.validate()
        versions.check_writable_base_path(base_path)
        self.cfg = cfg
        self.base_path = Path(base_path)
        self.export = export
        self.run_id = run_id or records.new_run_id()
        self.cancel_requested = False
        self._proc: subprocess.Popen | None = None
        self._attached: state.ProcessRecord | None = None
        """The process of a run found on disk (its training lock) rather than started here."""

    @classmethod
    def attach(cls, base_path: Path | str, run_id: str) -> TrainingProcess | None:
        """The run's process, found again from the model folder's training lock (after a
        dashboard restart), if that very process still trains ``run_id``; None otherwise. It can
        be cancelled like one started here."""
        if not run_id or "/" in run_id or run_id.startswith("."):  # ids come from URLs: no paths
            return None
        holder = lock.holder(base_path)
        if holder is None or holder.run_id != run_id:
            return None
        record = records.load_run(base_path, run_id)
        job = cls(TrainConfig.from_dict(record.config if record is not None else {}), base_path,
                  record.export_requested if record is not None else True, run_id=run_id)
        job._attached = holder.process
        return job

    def start(self) -> TrainingProcess:
        """Start the child and return at once. :class:`pipeline.runs.lock.TrainingBusy` (a
        ``ValueError``) if another run trains on this model folder: checked and recorded under
        the folder's guard, so two tabs clicking Train together start one run, not two."""
        records.runs_dir(self.base_path).mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pipeline.runs.process", "--base-path", str(self.base_path),
                   "--run-id", self.run_id, "--config", json.dumps(self.cfg.to_dict()),
                   "--requested-at", repr(time.time())]
        if not self.export:
            command.append("--no-export")
        # lifeline.ENV: the child cancels its run by itself if this process dies without
        # stopping it (SIGKILL, a closed terminal); see pipeline/lifeline.py.
        env = {**_child_env(), lifeline.ENV: str(os.getpid())}
        with lock.guarded(self.base_path):
            lock.check_free(self.base_path, self.run_id)
            with open(log_path(self.base_path, self.run_id), "wb") as log:
                self._proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL,
                                              stdout=log, stderr=subprocess.STDOUT, env=env)
            # Popen returns after the exec, so /proc shows the child's own start time and command;
            # a child already gone gets a record that never matches (record() then says it failed)
            process = state.ProcessRecord.of(self._proc.pid) or state.ProcessRecord(
                self._proc.pid, None, tuple(command))
            lock.record(self.base_path, self.run_id, process)
        prune_logs(self.base_path)
        return self

    @property
    def pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid
        return self._attached.pid if self._attached is not None else None

    @property
    def running(self) -> bool:
        if self._proc is not None:
            return self._proc.poll() is None
        return self._attached is not None and self._attached.matches()

    def cancel(self) -> None:
        """Ask the run to stop; it ends "cancelled" after the current batch. A process found
        by :meth:`attach` is signalled only while it is still that very process."""
        self.cancel_requested = True
        if self._proc is not None and self.running:
            self._proc.send_signal(signal.SIGTERM)
        elif self._attached is not None:
            self._attached.signal(signal.SIGTERM)

    def join(self, timeout: float | None = None) -> None:
        """Wait for a process started here to exit (TimeoutExpired after `timeout` s)."""
        if self._proc is not None:
            self._proc.wait(timeout)

    def record(self) -> RunRecord | None:
        """The latest record on disk; once the process is gone without a final record, a
        ``FAILED`` (or, if it was being cancelled, ``CANCELLED``) record saying so, saved."""
        record = records.load_run(self.base_path, self.run_id)
        ended = record is not None and record.status is not RunStatus.RUNNING
        if self.running or self._proc is None or ended:
            return record
        code = self._proc.returncode
        lock.release(self.base_path, self.run_id)  # a killed child could not remove its own record
        if record is None:
            record = RunRecord(self.run_id, started=records.now_iso(), config=self.cfg.to_dict(),
                               true=Weights(tuple(self.cfg.true_w), self.cfg.true_b))
        if self.cancel_requested:
            record.status = RunStatus.CANCELLED
        else:
            log = log_path(self.base_path, self.run_id)
            record.status = RunStatus.FAILED
            record.error = (f"the training process ended unexpectedly (exit code {code}) before "
                            f"recording a result; its output is in {log}")
        record.finished = records.now_iso()
        records.save_run(self.base_path, record)
        return record


def _run_child(module: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=PROJECT_ROOT, env=_child_env(),
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)


def _child_error(done: subprocess.CompletedProcess) -> str:
    """The last line a failed child printed to stderr (its own message, not a traceback)."""
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    message = lines[-1] if lines else f"exit code {done.returncode}"
    return message.split("error: ", 1)[-1]


def export_run_in_process(base_path: Path | str, run_id: str, anyway: bool = False) -> int:
    """Export a finished run as the next version (``python -m pipeline.runs.export`` in a
    child process); return the version number. ``ValueError`` with the reason otherwise.
    ``anyway`` exports a run the quality gate warned about."""
    done = _run_child("pipeline.runs.export", ["--base-path", str(base_path), "--run-id", run_id,
                                               *(["--anyway"] if anyway else [])])
    if done.returncode != 0:
        raise ValueError(_child_error(done))
    return int(json.loads(done.stdout.strip().splitlines()[-1])["version"])


def seed_demo_in_process(base_path: Path | str, versions: int) -> list[str]:
    """Seed demo versions and runs (``python -m pipeline.demo`` in a child process); return
    the lines it printed. ``ValueError`` with the reason if it failed."""
    done = _run_child("pipeline.demo", ["--base-path", str(base_path), "--versions", str(versions)])
    if done.returncode != 0:
        raise ValueError(_child_error(done))
    return [line for line in done.stdout.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    """The child's side: run one training run, turning SIGTERM/SIGINT into a clean cancel."""
    cancel = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: cancel.set())
    lifeline.watch_parent(cancel.set)
    parser = argparse.ArgumentParser(prog="python -m pipeline.runs.process",
                                     description="Run one recorded training run (used by the dashboard).")
    parser.add_argument("--base-path", type=Path, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--config", required=True, help="the TrainConfig as JSON")
    parser.add_argument("--no-export", action="store_true")
    parser.add_argument("--requested-at", type=float, default=None,
                        help="when the run was asked for (Unix time), for its end-to-end time")
    args = parser.parse_args(argv)
    from pipeline.runs.job import run_training

    cfg = TrainConfig.from_dict(json.loads(args.config))
    record = run_training(cfg, args.base_path, export=not args.no_export, cancel=cancel, run_id=args.run_id,
                          requested_at=args.requested_at)
    return 0 if record.status in (RunStatus.SUCCEEDED, RunStatus.CANCELLED) else 1


if __name__ == "__main__":
    sys.exit(main())
