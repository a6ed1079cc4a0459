"""Compare batching settings on the embedded server, and recommend one from measurements.

For each :class:`BatchingSetting` (off; on with a ``max_batch_size`` / ``batch_timeout_micros`` /
``num_batch_threads``), :func:`compare_batching` restarts the embedded server
(`pipeline.client.local_server.restart` with an explicit command line: every flag given, so the
server's own defaults never decide), waits until the model is AVAILABLE, runs the same sweep
(`pipeline.loadtest.job`, a child process) and keeps its levels. :func:`recommend` picks the
setting with the highest OK throughput among levels without errors whose p99 meets the target,
with the ``batching_parameters_file`` text to copy. The server the user had is restarted with its
own command line afterwards, also when the comparison is stopped or fails.

The comparison's state is ``comparison.json`` in its folder (its sweeps in ``sweeps/``), rewritten
after every step; a ``stop`` file in the folder (:func:`request_stop`) ends it at the next check.
:func:`start_comparison` runs it in a thread of the calling process, which must be the process
that owns the embedded server (the dashboard): a server started by a child would die with it.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.client import local_server
from pipeline.client.errors import ClientError
from pipeline.client.rest import ServingClient, available_versions
from pipeline.loadtest import job
from pipeline.loadtest.results import LevelResult
from pipeline.loadtest.spec import LoadSpec, LoadTestError
from pipeline.state import ProcessRecord, atomic_write_json, atomic_write_text, read_json

COMPARISON, STOP, SWEEPS = "comparison.json", "stop", "sweeps"
RUNNING, DONE, STOPPED, FAILED = "running", "done", "stopped", "failed"
READY_TIMEOUT_S = 300.0
"""How long a restarted server may take to import TensorFlow and load the model."""
POLL_S = 0.2
KEEP_COMPARISONS = 10
"""Finished comparisons kept; older ones are removed when one starts."""


@dataclass(frozen=True)
class BatchingSetting:
    """One way to run the server: batching off, or on with these ``BatchingParameters``."""

    enabled: bool
    max_batch_size: int = 32
    batch_timeout_micros: int = 0
    num_batch_threads: int = 1
    max_enqueued_batches: int = 1000
    """Generous, so a comparison at high concurrency measures batching, not a full queue's 503s."""

    @property
    def label(self) -> str:
        if not self.enabled:
            return "batching off"
        threads = "thread" if self.num_batch_threads == 1 else "threads"
        return (f"max_batch_size {self.max_batch_size}, batch_timeout_micros {self.batch_timeout_micros}, "
                f"{self.num_batch_threads} batch {threads}")

    def parameters_text(self) -> str:
        """The ``batching_parameters_file`` (a ``BatchingParameters`` text proto); "" when off."""
        if not self.enabled:
            return ""
        return (f"max_batch_size {{ value: {self.max_batch_size} }}\n"
                f"batch_timeout_micros {{ value: {self.batch_timeout_micros} }}\n"
                f"max_enqueued_batches {{ value: {self.max_enqueued_batches} }}\n"
                f"num_batch_threads {{ value: {self.num_batch_threads} }}\n")

    def check(self) -> None:
        """``ValueError`` for a value TF Serving would refuse."""
        usable = (1 <= self.max_batch_size <= 1_000_000 and self.batch_timeout_micros >= 0
                  and 1 <= self.num_batch_threads <= 256 and self.max_enqueued_batches >= 1)
        if self.enabled and not usable:
            raise ValueError(f"not a usable batching setting: {self.label}")


DEFAULT_SETTINGS = (
    BatchingSetting(False),
    BatchingSetting(True, 32, 0, 1),
    BatchingSetting(True, 32, 1000, 1),
    BatchingSetting(True, 128, 2000, 1),
    BatchingSetting(True, 32, 0, 2),
)


@dataclass(frozen=True)
class EmbeddedServer:
    """Where the embedded server runs and what it serves (the comparison's servers use the same)."""

    port: int
    model_name: str
    base_path: Path
    run_dir: Path
    host: str = "127.0.0.1"
    grpc_port: int = 8500

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def grpc_target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.grpc_port}"


def server_command(server: EmbeddedServer, setting: BatchingSetting,
                   parameters_file: Path | None) -> list[str]:
    """The embedded server's command line for ``setting``: every flag explicit."""
    argv = [sys.executable, "-m", "pipeline.serving", "--rest_api_port", str(server.port),
            "--rest_api_host", server.host, "--port", str(server.grpc_port),
            "--model_name", server.model_name, "--model_base_path", str(Path(server.base_path).resolve()),
            "--file_system_poll_wait_seconds", "1", "--enable_prometheus",
            "--enable_grpc_healthcheck_service", f"--enable_batching={str(setting.enabled).lower()}"]
    if setting.enabled and parameters_file is not None:
        argv += ["--batching_parameters_file", str(parameters_file)]
    return argv


@dataclass
class SettingResult:
    """One setting's sweep."""

    setting: BatchingSetting
    status: str = RUNNING
    message: str = ""
    sweep: str = ""
    """The sweep's run folder, relative to the comparison's."""
    levels: list[LevelResult] = field(default_factory=list)
    server_pid: int | None = None
    """The server process this setting was measured on (each setting gets its own)."""
    command: list[str] = field(default_factory=list)
    """That server's command line."""


@dataclass(frozen=True)
class Recommendation:
    """The setting to use (None when none met the target), where it was measured, and why."""

    setting: BatchingSetting | None
    reason: str
    concurrency: int | None = None
    ok_per_second: float | None = None
    p99_ms: float | None = None

    @property
    def parameters_text(self) -> str:
        return self.setting.parameters_text() if self.setting is not None else ""

    @property
    def flags(self) -> str:
        """The server flags that apply it."""
        if self.setting is None:
            return ""
        if not self.setting.enabled:
            return "--enable_batching=false"
        return "--enable_batching=true --batching_parameters_file=batching_parameters.txt"


def recommend(results: Sequence[SettingResult], p99_target_ms: float) -> Recommendation:
    """The setting with the highest OK requests/s at a level with no errors and p99 ≤ the target."""
    best: tuple[float, SettingResult, LevelResult] | None = None
    closest: tuple[float, SettingResult, LevelResult] | None = None
    for result in results:
        for level in result.levels:
            if level.p99_ms is None or level.errors or level.partial:
                continue
            if closest is None or level.p99_ms < closest[0]:
                closest = (level.p99_ms, result, level)
            if level.p99_ms <= p99_target_ms and (best is None or level.ok_per_second > best[0]):
                best = (level.ok_per_second, result, level)
    if best is None:
        if closest is None:
            return Recommendation(None, "no setting was measured without errors")
        p99, result, level = closest
        return Recommendation(None, f"no setting kept p99 at or below {p99_target_ms:g} ms without errors; "
                              f"the lowest p99 was {p99:.2f} ms ({result.setting.label}, {level.label}). "
                              "Raise the target, or lower the concurrency.")
    rps, result, level = best
    return Recommendation(result.setting, f"{result.setting.label}: {rps:,.0f} requests/s answered OK at "
                          f"{level.label} with p99 {level.p99_ms:.2f} ms ≤ {p99_target_ms:g} ms, the most of "
                          "any setting within the target", level.concurrency, rps, level.p99_ms)


@dataclass
class Comparison:
    """A comparison as its folder tells it."""

    status: str
    message: str = ""
    phase: str = ""
    p99_target_ms: float = 0.0
    results: list[SettingResult] = field(default_factory=list)
    recommendation: Recommendation | None = None
    restored: str = ""
    owner: dict[str, Any] | None = None
    started: str = ""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["results"] = [{"setting": asdict(r.setting), "status": r.status, "message": r.message,
                            "sweep": r.sweep, "levels": [level.to_json() for level in r.levels],
                            "server_pid": r.server_pid, "command": r.command} for r in self.results]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Comparison:
        results = [SettingResult(BatchingSetting(**r["setting"]), r.get("status", DONE), r.get("message", ""),
                                 r.get("sweep", ""), [LevelResult.from_json(x) for x in r.get("levels", [])],
                                 r.get("server_pid"), list(r.get("command", [])))
                   for r in data.get("results", [])]
        rec = data.get("recommendation")
        recommendation = None if not rec else Recommendation(
            BatchingSetting(**rec["setting"]) if rec.get("setting") else None, rec.get("reason", ""),
            rec.get("concurrency"), rec.get("ok_per_second"), rec.get("p99_ms"))
        return cls(data.get("status", FAILED), data.get("message", ""), data.get("phase", ""),
                   float(data.get("p99_target_ms", 0.0)), results, recommendation, data.get("restored", ""),
                   data.get("owner"), data.get("started", ""))


def read_comparison(folder: Path | str) -> Comparison | None:
    """The comparison in ``folder``; one whose owner process is gone reads as failed."""
    data = read_json(Path(folder) / COMPARISON)
    if not isinstance(data, dict):
        return None
    comparison = Comparison.from_json(data)
    owner = ProcessRecord.from_json(comparison.owner)
    if comparison.status == RUNNING and (owner is None or not owner.matches()):
        comparison.status = FAILED
        comparison.message = "the process running the comparison ended before it finished"
    return comparison


def request_stop(folder: Path | str) -> None:
    """Ask the comparison in ``folder`` to stop (it does at its next check, within a fraction of a
    second, stopping the sweep in progress and restoring the server)."""
    atomic_write_text(Path(folder) / STOP, "stop\n")


def comparison_folders(root: Path | str) -> list[Path]:
    """Every comparison folder under ``root``, oldest first."""
    root = Path(root)
    return sorted(p for p in root.glob("*") if (p / COMPARISON).is_file()) if root.is_dir() else []


class _Stopped(Exception):
    pass


def _wait_ready(server: EmbeddedServer, stopped: Callable[[], bool]) -> None:
    """Until the restarted server serves the model; ``LoadTestError`` if it exits or takes too long."""
    client = ServingClient(server.url, timeout=2.0)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        if stopped():
            raise _Stopped
        try:
            if available_versions(client.model_status(server.model_name)):
                return
        except ClientError:
            pass
        status = local_server.status(server.run_dir)
        if not status.running:
            tail = local_server.log_tail(5, run_dir=server.run_dir)
            raise LoadTestError(f"the server exited while starting (status {status.exit_code}): {tail}")
        if time.monotonic() > deadline:
            raise LoadTestError(f"the server did not serve {server.model_name} within {READY_TIMEOUT_S:g} s")
        time.sleep(POLL_S)


def _sweep(folder: Path, spec: LoadSpec, result: SettingResult, stopped: Callable[[], bool],
           save: Callable[[], None]) -> None:
    """Run one sweep as a child process and keep its levels in ``result`` as they come."""
    run = job.start_run(folder / SWEEPS, spec, keep=10_000)
    result.sweep = str(run.relative_to(folder))
    while True:
        state = job.read_run(run)
        result.levels = list(state.result.levels)
        if not state.running:
            result.status, result.message = state.status, state.message
            save()
            return
        if stopped():
            job.stop_run(run)
            raise _Stopped
        save()
        time.sleep(POLL_S)


def compare_batching(server: EmbeddedServer, settings: Sequence[BatchingSetting], spec: LoadSpec,
                     p99_target_ms: float, folder: Path | str,
                     stopped: Callable[[], bool] | None = None) -> Comparison:
    """Measure ``spec`` under each setting on the embedded server, recommend one, restore the
    server the user had. Never raises for a load or server problem: the comparison says how it
    ended (and is kept in ``folder/comparison.json`` throughout)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stop_file = folder / STOP
    stopped = stopped or (lambda: False)

    def halted() -> bool:
        return stopped() or stop_file.exists()

    comparison = Comparison(RUNNING, p99_target_ms=p99_target_ms, owner=ProcessRecord.current().to_json(),
                            started=time.strftime("%Y-%m-%d %H:%M:%S"),
                            results=[SettingResult(s, status="waiting") for s in settings])

    def save() -> None:
        atomic_write_json(folder / COMPARISON, comparison.to_json())

    original = local_server.status(server.run_dir)
    save()
    status, message = FAILED, "interrupted"
    try:
        for index, result in enumerate(comparison.results, start=1):
            setting = result.setting
            if halted():
                raise _Stopped
            comparison.phase = f"{index}/{len(settings)}: restarting the server with {setting.label}"
            result.status = RUNNING
            save()
            parameters = None
            if setting.enabled:
                parameters = folder / f"batching_parameters_{index}.txt"
                atomic_write_text(parameters, setting.parameters_text())
            command = server_command(server, setting, parameters)
            started = local_server.restart(server.port, server.host, model_name=server.model_name,
                                           base_path=server.base_path, command=command,
                                           run_dir=server.run_dir)
            result.server_pid, result.command = started.pid, command
            _wait_ready(server, halted)
            comparison.phase = f"{index}/{len(settings)}: load with {setting.label}"
            save()
            sweep_spec = spec.with_(url=server.url, grpc=server.grpc_target if spec.grpc else None,
                                    tags={**spec.tags, "batching": setting.label})
            _sweep(folder, sweep_spec, result, halted, save)
        comparison.recommendation = recommend(comparison.results, p99_target_ms)
        status, message = DONE, comparison.recommendation.reason
    except _Stopped:
        status, message = STOPPED, "stopped; the settings measured so far are kept"
    except (LoadTestError, OSError) as error:
        status, message = FAILED, str(error)
    except Exception as error:  # noqa: BLE001 - said on the page; the server is restored below
        status, message = FAILED, f"{type(error).__name__}: {error}"
    finally:
        for result in comparison.results:
            if result.status == RUNNING:
                result.status = status
        if comparison.recommendation is None and any(r.levels for r in comparison.results):
            comparison.recommendation = recommend(comparison.results, p99_target_ms)
        comparison.phase = "restoring the server you had"
        save()  # still running: it ends once the user's server is back
        comparison.restored = _restore(server, original)
        comparison.status, comparison.message, comparison.phase = status, message, ""
        save()
    return comparison


def _restore(server: EmbeddedServer, original: local_server.ServerStatus) -> str:
    """Start the server the user had with its own command line (or stop ours if none ran)."""
    try:
        if original.running and original.command:
            local_server.restart(original.port or server.port, original.host or server.host,
                                 model_name=server.model_name, base_path=server.base_path,
                                 command=list(original.command), run_dir=server.run_dir)
            return "the embedded server was restarted with the command line it had before the comparison"
        local_server.stop(run_dir=server.run_dir)
        return "no embedded server ran before the comparison: the last one it started was stopped"
    except OSError as error:
        return f"the server you had could not be restarted ({error}): start it on the Serving page"


def start_comparison(root: Path | str, server: EmbeddedServer, settings: Sequence[BatchingSetting],
                     spec: LoadSpec, p99_target_ms: float) -> Path:
    """Run :func:`compare_batching` in a daemon thread of this process; its folder at once."""
    for setting in settings:
        setting.check()
    for old in comparison_folders(root)[:-KEEP_COMPARISONS]:
        if (found := read_comparison(old)) is None or found.status != RUNNING:
            shutil.rmtree(old, ignore_errors=True)
    folder = Path(root) / f"batching-{time.strftime('%Y%m%dT%H%M%S')}-{time.monotonic_ns() % 10**6:06d}"
    folder.mkdir(parents=True)
    placeholder = Comparison(RUNNING, phase="starting", p99_target_ms=p99_target_ms,
                             owner=ProcessRecord.current().to_json(),
                             started=time.strftime("%Y-%m-%d %H:%M:%S"),
                             results=[SettingResult(s, status="waiting") for s in settings])
    atomic_write_json(folder / COMPARISON, placeholder.to_json())
    threading.Thread(target=compare_batching, args=(server, tuple(settings), spec, p99_target_ms, folder),
                     name="batching-comparison", daemon=True).start()
    return folder
