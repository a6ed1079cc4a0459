"""TensorFlow work for the dashboard, each piece in its own process.

Why not a thread in the dashboard: after *every* script run (every fragment tick, every
click, in every session) Streamlit's ``ScriptRunner`` calls ``keras.backend.clear_session()``
and ``gc.collect(2)`` (``streamlit/runtime/scriptrunner/script_runner.py``,
``_clean_problem_modules``). A Keras ``fit`` in a thread of that process keeps losing its
traced train function: measured, 100 epochs of 800 rows took 47 s there instead of 1.5 s, and
the run stalled for half a minute in a ``tf.data`` iterator destructor. In a child process the
run is as fast as on the command line, and the dashboard process never even imports Keras.

:class:`TrainingProcess` has :class:`pipeline.jobs.TrainingJob`'s interface (``start``,
``cancel``, ``running``, ``record``) and runs the very same :func:`pipeline.jobs.run_training`
in ``python -m pipeline.process_jobs``, so the run record on disk stays the one source of truth.
Cancel is SIGTERM, which the child turns into the cancel event (the run ends "cancelled" after
the current batch). A child that dies without a final record (killed, out of memory) is
recorded as failed by the parent, so no run is left "running" forever.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from pipeline import config, registry, runs
from pipeline.training import TrainConfig

CHILD_TIMEOUT_S = 600.0
"""How long an export or a demo seeding may take before it is reported as hung."""


def _child_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}


def log_path(base_path: Path | str, run_id: str) -> Path:
    """Where a run's process writes its output (hidden, next to the run record)."""
    return runs.runs_dir(base_path) / f".{run_id}.log"


class TrainingProcess:
    """One training run in a child process; its state is the run record on disk.

    ``start()`` returns at once; ``cancel()`` stops the run after the current batch;
    ``record()`` reads the latest record. A bad config or an unwritable base path raises
    ``ValueError`` in the constructor, before any process starts.
    """

    def __init__(self, cfg: TrainConfig, base_path: Path | str, export: bool = True) -> None:
        cfg.validate()
        registry.check_writable_base_path(base_path)
        self.cfg = cfg
        self.base_path = Path(base_path)
        self.export = export
        self.run_id = runs.new_run_id()
        self.cancel_requested = False
        self._proc: subprocess.Popen | None = None

    def start(self) -> TrainingProcess:
        runs.runs_dir(self.base_path).mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pipeline.process_jobs", "--base-path", str(self.base_path),
                   "--run-id", self.run_id, "--config", json.dumps(self.cfg.to_dict())]
        if not self.export:
            command.append("--no-export")
        with open(log_path(self.base_path, self.run_id), "wb") as log:
            self._proc = subprocess.Popen(command, cwd=config.PROJECT_ROOT, stdin=subprocess.DEVNULL,
                                          stdout=log, stderr=subprocess.STDOUT, env=_child_env())
        return self

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def cancel(self) -> None:
        """Ask the run to stop; it ends "cancelled" after the current batch."""
        self.cancel_requested = True
        if self.running:
            self._proc.send_signal(signal.SIGTERM)

    def join(self, timeout: float | None = None) -> None:
        if self._proc is not None:
            self._proc.wait(timeout)

    def record(self) -> dict[str, Any] | None:
        """The latest record on disk; once the process is gone without a final record, a
        ``failed`` (or, if it was being cancelled, ``cancelled``) record saying so, saved."""
        record = runs.load_run(self.base_path, self.run_id)
        if self.running or self._proc is None or (record is not None and record.get("status") != "running"):
            return record
        code = self._proc.returncode
        record = record or {"id": self.run_id, "started": runs.now_iso(), "config": self.cfg.to_dict(),
                            "true": {"w": list(self.cfg.true_w), "b": self.cfg.true_b}, "history": []}
        if self.cancel_requested:
            record.update(status="cancelled")
        else:
            log = log_path(self.base_path, self.run_id)
            record.update(status="failed",
                          error=f"the training process ended unexpectedly (exit code {code}) before "
                          f"recording a result; its output is in {log}")
        record["finished"] = runs.now_iso()
        runs.save_run(self.base_path, record)
        return record


def _run_child(module: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], cwd=config.PROJECT_ROOT, env=_child_env(),
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)


def _child_error(done: subprocess.CompletedProcess) -> str:
    """The last line a failed child printed to stderr (its own message, not a traceback)."""
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    message = lines[-1] if lines else f"exit code {done.returncode}"
    return message.split("error: ", 1)[-1]


def export_run_in_process(base_path: Path | str, run_id: str) -> int:
    """Export a finished run as the next version (``python -m pipeline.export_run`` in a
    child process); return the version number. ``ValueError`` with the reason otherwise."""
    done = _run_child("pipeline.export_run", ["--base-path", str(base_path), "--run-id", run_id])
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
    parser = argparse.ArgumentParser(prog="python -m pipeline.process_jobs",
                                     description="Run one recorded training run (used by the dashboard).")
    parser.add_argument("--base-path", type=Path, required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--config", required=True, help="the TrainConfig as JSON")
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args(argv)
    from pipeline.jobs import run_training

    cfg = TrainConfig.from_dict(json.loads(args.config))
    record = run_training(cfg, args.base_path, export=not args.no_export, cancel=cancel, run_id=args.run_id)
    return 0 if record["status"] in ("succeeded", "cancelled") else 1


if __name__ == "__main__":
    sys.exit(main())
