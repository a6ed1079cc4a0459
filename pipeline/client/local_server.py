"""Start, stop and find the embedded model server (`python -m pipeline.serving`) as a process.

The server runs as a separate process with the project root as its working directory, its
stdout and stderr in ``.run/serving.log`` (the previous start's in ``serving.log.1``) and its
process record (pid, start time, command line, plus port and host) in ``.run/serving.pid``.
State lives on disk, not in the caller's memory, so a dashboard refresh, a second dashboard or a
script finds the server a first one started. The record is trusted only while ``/proc`` shows
that very process (:class:`pipeline.state.ProcessRecord`), so a recycled pid is never reported
as the server nor signalled.

The process that starts a server stops it when it exits (an ``atexit`` hook): the embedded
server lives as long as the dashboard that launched it. If that process dies without running
its hooks (SIGKILL, SIGHUP), the server notices it was re-parented and exits by itself
(``SERVING_PARENT_PID``, ``pipeline/lifeline.py``). No Streamlit here.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipeline import state
from pipeline.client.rest import ServingClient
from pipeline.client.urls import bind_host, is_local_url, url_port
from pipeline.settings import PROJECT_ROOT
from pipeline.store import serving_config, traffic

DEFAULT_RUN_DIR = PROJECT_ROOT / ".run"
"""Where the pid file and log live unless a caller passes ``run_dir`` (``Settings.run_dir``, set
by ``SERVING_RUN_DIR``, e.g. one per e2e test run)."""
LOG_NAME = "serving.log"
LOGS_KEPT = 1
"""Logs of earlier starts kept beside the current one (``serving.log.1``)."""
PID_NAME = "serving.pid"
MODELS_CONFIG_NAME = "models.config"
BATCHING_PARAMETERS_NAME = "batching_parameters.txt"
BATCH_MAX_ROWS = 50_000
"""The embedded server batches requests (``--enable_batching``) with this ``max_batch_size``, so
one request of up to this many rows is answered: TF Serving's default of 1,000 refuses larger
ones ("Task size ... is larger than maximum input batch size"), and the Predict page sends up to
50,000 rows (``dashboard.input_table.MAX_INTERACTIVE_ROWS``)."""
STOP_TIMEOUT_S = 10.0
"""How long a stop waits after SIGTERM before it sends SIGKILL."""
LOADED_VERSIONS = 2
"""Versions the embedded server keeps loaded (``latest { num_versions: N }``). TF Serving's
default is 1; 2 lets a client compare the newest version with the one before it.
Requests without a version still go to the highest AVAILABLE version either way."""

CONFIG_POLL_SECONDS = 1
"""How often the embedded server re-reads its models.config (labels, models added)."""

_children: dict[int, tuple[subprocess.Popen, Path, state.ProcessRecord]] = {}
"""Servers started by this process, with their pid file and record. Keeping the Popen lets
``poll()`` reap an exited child, so it never lingers as a zombie."""
_atexit_registered = False


@dataclass(frozen=True)
class ServerStatus:
    """What is known about the embedded server from ``.run/``: running or not, and how it was started."""

    running: bool
    log_path: Path
    pid: int | None = None
    port: int | None = None
    host: str | None = None
    command: tuple[str, ...] = ()
    started: str | None = None
    """ISO-8601 UTC time of the start."""
    exit_code: int | None = None
    """Exit status, when this process started the server and it has exited."""

    @property
    def url(self) -> str | None:
        if self.port is None:
            return None
        host = f"[{self.host}]" if self.host and ":" in self.host else (self.host or "127.0.0.1")
        return f"http://{host}:{self.port}"


def server_command(port: int, host: str = "127.0.0.1", *, model_name: str, base_path: Path | str,
                   loaded_versions: int = LOADED_VERSIONS,
                   run_dir: Path | str | None = None) -> list[str]:
    """The command line of the embedded server, with tensorflow_model_server's flags.

    With ``loaded_versions`` > 1 the models are described in ``<run_dir>/models.config``
    (written here by :func:`pipeline.store.serving_config.write_for_server`): ``model_name`` and
    every other model folder beside ``base_path``, each with a ``latest { num_versions: N }``
    policy and the labels set on the Models page, so every dashboard session finds its model
    served whichever name started the server. The server re-reads the file every
    ``CONFIG_POLL_SECONDS`` (``--model_config_file_poll_wait_seconds``). Every model's requests are
    logged under ``<run_dir>/traffic/`` (the Traffic page), in files of
    ``traffic.FILE_BYTES``, the oldest removed past the kept size (``traffic.max_bytes``).
    Batching takes its parameters from ``<run_dir>/batching_parameters.txt`` (written here:
    ``max_batch_size`` :data:`BATCH_MAX_ROWS`, TF Serving's other defaults).
    """
    folder = Path(run_dir) if run_dir is not None else DEFAULT_RUN_DIR
    parameters = folder / BATCHING_PARAMETERS_NAME
    state.atomic_write_text(parameters, f"max_batch_size {{ value: {BATCH_MAX_ROWS} }}\n")
    argv = [sys.executable, "-m", "pipeline.serving", "--rest_api_port", str(port), "--rest_api_host", host,
            "--file_system_poll_wait_seconds", "1", "--enable_prometheus",
            "--enable_grpc_healthcheck_service", "--enable_batching",
            "--batching_parameters_file", str(parameters),
            "--max_num_load_retries", "0"]  # exports are written atomically: a failed load stays failed
    if loaded_versions <= 1:
        return argv + ["--model_name", model_name, "--model_base_path", str(base_path)]
    config_path = folder / MODELS_CONFIG_NAME
    serving_config.write_for_server(config_path, model_name, base_path, int(loaded_versions))
    # re-read every second: labels set on the Models page and models added by a session that
    # works on another name take effect without a restart
    return argv + ["--model_config_file", str(config_path),
                   "--model_config_file_poll_wait_seconds", str(CONFIG_POLL_SECONDS),
                   "--request_log_max_file_bytes", str(traffic.FILE_BYTES),
                   "--request_log_max_total_bytes", str(traffic.max_bytes(folder))]


def _paths(run_dir: Path | str | None) -> tuple[Path, Path, Path]:
    folder = Path(run_dir) if run_dir is not None else DEFAULT_RUN_DIR
    return folder, folder / PID_NAME, folder / LOG_NAME


def _locked(folder: Path) -> contextlib.AbstractContextManager[None]:
    """Serialises start/stop between threads and processes (two dashboards pressing Start)."""
    return state.file_lock(folder / "serving.lock")


def _alive(record: state.ProcessRecord) -> bool:
    """True while the recorded server runs: our own child until it exits, else the very process
    the record names (not a zombie, not a recycled pid)."""
    child = _children.get(record.pid)
    if child is not None and child[2] == record:
        return child[0].poll() is None
    return record.matches()


def status(run_dir: Path | str | None = None) -> ServerStatus:
    """The embedded server as recorded in ``.run/``: whether it runs, its pid, port and command."""
    _, pid_path, log_path = _paths(run_dir)
    record = state.read_record(pid_path)
    if record is None:
        return ServerStatus(running=False, log_path=log_path)
    child = _children.get(record.pid)
    port, host, started = (record.info.get(key) for key in ("port", "host", "started"))
    return ServerStatus(
        running=_alive(record), log_path=log_path, pid=record.pid,
        port=port if isinstance(port, int) else None, host=host if isinstance(host, str) else None,
        command=record.command, started=started if isinstance(started, str) else None,
        exit_code=child[0].poll() if child is not None and child[2] == record else None)


def start(port: int, host: str = "127.0.0.1", *, model_name: str, base_path: Path | str,
          loaded_versions: int = LOADED_VERSIONS, command: Sequence[str] | None = None,
          run_dir: Path | str | None = None) -> ServerStatus:
    """Start the embedded server in the background and return at once (it needs seconds to
    import TensorFlow before its port answers). If one recorded in ``run_dir`` already runs,
    that one is returned and nothing new is started.

    ``command`` replaces the server's command line (tests use a stand-in). The previous log
    is kept as ``serving.log.1`` (:data:`LOGS_KEPT`).
    """
    folder, pid_path, log_path = _paths(run_dir)
    with _locked(folder):
        current = status(run_dir)
        if current.running:
            return current
        argv = list(command) if command is not None else server_command(
            port, host, model_name=model_name, base_path=base_path, loaded_versions=loaded_versions,
            run_dir=folder)
        state.rotate(log_path, LOGS_KEPT)
        # SERVING_PARENT_PID: the server exits by itself if this process dies without its atexit
        # hook running (SIGKILL, SIGHUP from a closed terminal); see pipeline/lifeline.py.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "SERVING_PARENT_PID": str(os.getpid())}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        started = datetime.now(UTC).isoformat(timespec="seconds")
        with open(log_path, "wb") as log:
            log.write(f"[{started}] starting: {shlex.join(argv)}\n".encode())
            log.flush()
            process = subprocess.Popen(argv, cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=log,
                                       stderr=subprocess.STDOUT, env=env, start_new_session=True)
        info = {"port": port, "host": host, "started": started}
        # Popen returns after the exec: /proc shows the server's own start time and command line.
        # A child that is already gone gets a record that never matches (its exit code still shows).
        record = state.ProcessRecord.of(process.pid, **info) or state.ProcessRecord(
            process.pid, None, tuple(argv), info)
        _children[process.pid] = (process, pid_path, record)
        _register_atexit()
        state.write_record(pid_path, record)
        return status(run_dir)


def _terminate(record: state.ProcessRecord, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns once the process is gone. Only
    the very process the record names is signalled (our own child through its Popen)."""
    child = _children.get(record.pid)
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        if child is not None and child[2] == record:
            if child[0].poll() is None:
                child[0].send_signal(sig)
        else:
            record.signal(sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _alive(record):
                return
            time.sleep(0.05)


def stop(timeout: float = STOP_TIMEOUT_S, run_dir: Path | str | None = None) -> bool:
    """Stop the recorded embedded server (SIGTERM, then SIGKILL after ``timeout`` s).

    Returns True if a running server was stopped, False if none was running. The pid file
    is removed either way.
    """
    folder, pid_path, _ = _paths(run_dir)
    with _locked(folder):
        record = state.read_record(pid_path)
        if record is None:
            return False
        was_running = _alive(record)
        if was_running:
            _terminate(record, timeout)
        state.remove_record(pid_path)
        return was_running


def restart(port: int, host: str = "127.0.0.1", *, model_name: str, base_path: Path | str,
            loaded_versions: int = LOADED_VERSIONS, command: Sequence[str] | None = None,
            run_dir: Path | str | None = None, timeout: float = STOP_TIMEOUT_S) -> ServerStatus:
    """Stop the embedded server if it runs, then start it with the given settings."""
    stop(timeout=timeout, run_dir=run_dir)
    return start(port, host, model_name=model_name, base_path=base_path, loaded_versions=loaded_versions,
                 command=command, run_dir=run_dir)


def log_tail(lines: int = 50, run_dir: Path | str | None = None) -> str:
    """The last ``lines`` lines of the server's log ("" when there is no log yet)."""
    _, _, log_path = _paths(run_dir)
    try:
        with open(log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 256 * 1024))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:]) if lines > 0 else ""


def autostart_if_needed(url: str, *, enabled: bool, model_name: str, base_path: Path | str,
                        run_dir: Path | str | None = None) -> ServerStatus | None:
    """Start the embedded server for ``url`` when it is local, silent and autostart is on.

    Returns the embedded server's status when it is ours (just started, or already
    recorded as running, e.g. still importing TensorFlow), ``None`` when nothing was done:
    autostart off (``enabled=False``, from ``AUTOSTART_SERVER=0``), a remote URL, or some other server already
    answers there (say a TF Serving container).
    """
    if not enabled or not is_local_url(url):
        return None
    current = status(run_dir)
    if current.running:
        return current
    if ServingClient(url, timeout=1.0).is_up():
        return None
    return start(url_port(url), bind_host(url), model_name=model_name, base_path=base_path, run_dir=run_dir)


def _stop_own_children() -> None:
    """atexit: stop every server this process started and still runs, and remove its pid file
    (unless it names another server by now)."""
    for process, pid_path, record in list(_children.values()):
        if process.poll() is None:
            _terminate(record, STOP_TIMEOUT_S)
        state.remove_record(pid_path, record)


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(_stop_own_children)
        _atexit_registered = True
