"""KServe's gRPC endpoint as a contender of the ``grpc`` bench section (runs in the project's venv).

KServe's ``ModelServer`` (``bench/kserve_model.py``, from the bench's KServe venv) serves the same
SavedModel on its gRPC port: the open inference protocol v2, ``inference.GRPCInferenceService/
ModelInfer``. The request body for h2load is a ``ModelInferRequest`` built by KServe's own protos
(``bench/kserve_grpc_client.py frame``, run with the KServe venv's python), and KServe's answers are
checked the same way (``... check``: real grpcio calls that must answer 3.0), because h2load only
counts HTTP statuses. KServe's ``/metrics`` (``request_predict_seconds_count``) is compared with
h2load's successes as a second check. Anything that keeps KServe's gRPC from running (no venv, no
start, wrong answers) becomes :attr:`KServeGrpc.unavailable`, never an exception.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import contenders as cs

GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"
CLIENT = cs.REPO / "bench" / "kserve_grpc_client.py"
CHECKED_ANSWERS = 64


@dataclass
class KServeGrpc:
    """What the KServe gRPC contender gave: h2load results per in-flight level, checks, or why not."""

    rows: dict[int, Any] = field(default_factory=dict)
    checks: list[str] = field(default_factory=list)
    version: str = ""
    unavailable: str = ""


def _client(python: Path, *args: str, timeout_s: float = 180.0) -> dict:
    """Run ``kserve_grpc_client.py ARGS`` with the KServe venv's python; its last JSON line."""
    out = subprocess.run([str(python), str(CLIENT), *args], cwd=cs.REPO, env=cs.subprocess_env(),
                         capture_output=True, text=True, timeout=timeout_s)
    if out.returncode != 0:
        raise cs.ContenderError(f"kserve_grpc_client.py {args[0]} exited {out.returncode}: "
                                f"{out.stderr.strip()[-500:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def check_answers(python: Path, target: str, count: int = CHECKED_ANSWERS) -> dict:
    """``count`` concurrent ModelInfer calls from the KServe venv: ``{"wrong", "sample", "error"}``."""
    return _client(python, "check", target, f"--count={count}")


def predicts_counted(rest_port: int) -> float:
    """Predict calls KServe's model has run so far (REST and gRPC), from its Prometheus ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(r'^request_predict_seconds_count\{model_name="' + cs.MODEL_NAME + r'"\} (\S+)$',
                      text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def _wait_for_grpc(python: Path, running: cs.Running, target: str, timeout_s: float) -> None:
    """Return once one ModelInfer answers 3.0; raise ContenderError if it answers wrong or never."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check_answers(python, target, 1)
        if not result["wrong"]:
            return
        if result["sample"] is not None:
            raise cs.ContenderError(f"KServe's gRPC answered {result['sample']}, expected [3.0]")
        if running.process.poll() is not None or time.monotonic() > deadline:
            raise cs.ContenderError(f"KServe's gRPC port did not answer ({result['error']}):\n"
                                    f"{running.log_tail(600)}")
        time.sleep(0.5)


def measure(version_dir: Path, work: Path, log_dir: Path, in_flight: tuple[int, ...],
            point: Callable[[str, Path, int], Any], say: Callable[[str], None],
            install_timeout_s: float = 900.0) -> KServeGrpc:
    """h2load ``point(url, body, in_flight)`` against KServe's gRPC port at every level, then check.

    KServe is installed into ``bench/.work/kserve-venv`` first if needed (as the ``kserve`` REST
    section does); each failure on the way is reported in ``unavailable`` instead of raised."""
    outcome = KServeGrpc()
    python, note = cs.ensure_kserve_venv(work / "kserve-venv", install_timeout_s,
                                         log_dir / "kserve-install.log")
    if python is None:
        outcome.unavailable = f"KServe {note}"
        return outcome
    outcome.version = note
    body = work / "kserve-infer.grpc"
    grpc_port = cs.free_port()
    base = cs.kserve(version_dir, python)
    contender = cs.Contender("kserve-grpc", (*base.argv, f"--grpc_port={grpc_port}"))
    target = f"127.0.0.1:{grpc_port}"
    try:
        _client(python, "frame", str(body))
        say("grpc: starting KServe's ModelServer (REST + gRPC v2)")
        running = cs.start(contender, log_dir)
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as error:
        outcome.unavailable = f"failed to start: {str(error).splitlines()[0][:200].rstrip(':')}"
        return outcome
    try:
        _wait_for_grpc(python, running, target, cs.START_TIMEOUT_S)
        before = predicts_counted(running.port)
        succeeded = 0
        for level in in_flight:
            say(f"grpc: KServe gRPC, {level} in flight")
            result = point(f"http://{target}{GRPC_PATH}", body, level)
            outcome.rows[level] = result
            succeeded += result.succeeded
        counted = predicts_counted(running.port) - before
        checked = check_answers(python, target)
        verdict = "ok" if counted >= succeeded else "MISMATCH: some HTTP 200s were gRPC errors"
        error = f"; first error: {checked['error']}" if checked["error"] else ""
        outcome.checks.append(
            f"KServe gRPC: {checked['wrong']} wrong of {CHECKED_ANSWERS} checked ModelInfer answers "
            f"(sample {checked['sample']}{error}); its /metrics counted {counted:.0f} predict calls for "
            f"h2load's {succeeded} successes, warm-ups excluded ({verdict})")
    except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as error:
        outcome.unavailable = f"failed: {str(error).splitlines()[0][:200]}"
        outcome.rows.clear()
    finally:
        running.stop()
    return outcome
