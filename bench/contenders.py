"""Start, check and stop each contender: a process serving ``:predict`` on a free loopback port.

Contract: :func:`start` returns only once the contender answers a 1-row ``:predict`` with the
expected prediction (so a warm-up never measures start-up, and a wrong answer never gets
benchmarked); :func:`Running.stop` ends the process it started (its own process group, by id) and
nothing else. KServe runs from the bench's own venv, installed on first use by
:func:`ensure_kserve_venv`; a failed or timed-out install is reported, not raised.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work"
MODEL_NAME = "linear_model"
PREDICT_PATH = f"/v1/models/{MODEL_NAME}:predict"
ONE_ROW = b'{"instances": [[1.0, 2.0]]}'
EXPECTED = [[3.0]]
"""``2*1 - 1*2 + 3``: what every contender must answer for ``ONE_ROW`` before it is measured."""

KSERVE_REQUIREMENTS = ("kserve==0.21.0", "tensorflow==2.21.0")
"""Installed into ``bench/.work/kserve-venv`` (pinned so runs compare like with like)."""
START_TIMEOUT_S = 240.0
"""Importing TensorFlow and loading the model on a busy 2-core machine can take a while."""


class ContenderError(RuntimeError):
    """A contender could not be started or answered wrongly; the message says why."""


def free_port() -> int:
    """A loopback port the kernel just picked. The bench keeps its own copy of
    `tests.support.net.free_port` because it runs without pytest and never imports the tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for every child: quiet TensorFlow, unbuffered output."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1", **extra}


def child_env(cwd: Path) -> dict[str, str]:
    """:func:`subprocess_env` for a child running in ``cwd``; for any cwd but the checkout (a
    ``--before`` tree), without ``PYTHONPATH``, which could put the checkout's ``pipeline`` first."""
    env = subprocess_env()
    if Path(cwd).resolve() != REPO:
        env.pop("PYTHONPATH", None)
    return env


@dataclass(frozen=True)
class Contender:
    """How to start one contender on a given port."""

    key: str
    argv: tuple[str, ...]
    """The command, with ``{port}`` where the port goes."""
    cwd: Path = REPO
    """Where it runs: ``python -m pipeline.serving`` imports the ``pipeline`` found here (a
    ``--before`` tree's, see ``bench/before.py``)."""

    def command(self, port: int) -> list[str]:
        return [part.replace("{port}", str(port)) for part in self.argv]


@dataclass
class Running:
    """A started contender process."""

    contender: Contender
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, for clients that add their own paths."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The 1-row bench's predict URL."""
        return self.base_url + PREDICT_PATH

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM the process group we created, then SIGKILL it after 15 s."""
        if self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


def post(url: str, body: bytes, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """POST JSON; returns (status, body). Connection errors propagate as ``OSError``."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def _answers_correctly(running: Running) -> bool:
    """True once the 1-row predict answers EXPECTED; False while not yet ready."""
    try:
        status, body = post(running.url, ONE_ROW)
    except OSError:
        return False
    if status != 200:
        return False
    predictions = json.loads(body).get("predictions")
    if predictions != EXPECTED:
        raise ContenderError(f"{running.contender.key} answered {predictions!r}, expected {EXPECTED!r}")
    return True


def start(contender: Contender, log_dir: Path, timeout_s: float = START_TIMEOUT_S) -> Running:
    """Start ``contender`` on a free port; return once it answers the 1-row predict correctly."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = log_dir / f"{contender.key}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(contender.command(port), cwd=contender.cwd, env=child_env(contender.cwd),
                                   stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    running = Running(contender, process, port, log_path)
    deadline = time.monotonic() + timeout_s
    try:
        while not _answers_correctly(running):
            if process.poll() is not None:
                raise ContenderError(
                    f"exited with {process.returncode} before answering:\n{running.log_tail()}")
            if time.monotonic() > deadline:
                raise ContenderError(f"no correct answer within {timeout_s:.0f} s:\n{running.log_tail()}")
            time.sleep(0.2)
    except BaseException:
        running.stop()
        raise
    return running


def batching_available(python: str = sys.executable, cwd: Path = REPO) -> bool:
    """Whether ``python -m pipeline.serving --help`` (run in ``cwd``) lists ``--enable_batching``."""
    out = subprocess.run([python, "-m", "pipeline.serving", "--help"], cwd=cwd, env=child_env(cwd),
                         capture_output=True, text=True, timeout=120)
    return "--enable_batching" in out.stdout


def server(base_path: Path, batching: bool, python: str = sys.executable, explicit: bool = True,
           cwd: Path = REPO) -> Contender:
    """This project's server (``python -m pipeline.serving``), batching on or off; with ``cwd`` a
    ``--before`` tree, that tree's server, keyed ``before-server`` / ``before-batching``.

    With ``explicit`` the choice is passed as ``--enable_batching=true|false``, so the "off"
    row stays off whatever the server's default is; without it only "on" is passed (for
    servers that predate the flag)."""
    argv = [python, "-m", "pipeline.serving", "--rest_api_port={port}", "--rest_api_host=127.0.0.1",
            f"--model_name={MODEL_NAME}", f"--model_base_path={base_path}", "--port=0"]  # REST only
    if batching or explicit:
        argv.append(f"--enable_batching={'true' if batching else 'false'}")
    key = "batching" if batching else "server"
    return Contender(key if Path(cwd).resolve() == REPO else f"before-{key}", tuple(argv), Path(cwd))


def plain_starlette(version_dir: Path, python: str = sys.executable) -> Contender:
    return Contender("starlette", (python, str(REPO / "bench" / "plain_starlette.py"), "--port={port}",
                                   f"--model_dir={version_dir}", f"--model_name={MODEL_NAME}"))


def raw_asgi(python: str = sys.executable) -> Contender:
    # as a module from the checkout (cwd), so it imports this checkout's pipeline.loadtest.floor
    return Contender("raw", (python, "-m", "bench.raw_asgi", "--port={port}"))


def kserve(version_dir: Path, python: Path) -> Contender:
    return Contender("kserve", (str(python), str(REPO / "bench" / "kserve_model.py"), "--http_port={port}",
                                f"--model_name={MODEL_NAME}", f"--model_dir={version_dir}"))


def ensure_kserve_venv(venv: Path, timeout_s: float, log_path: Path) -> tuple[Path | None, str]:
    """Install ``KSERVE_REQUIREMENTS`` into ``venv`` once; return (its python or None, a note).

    The note is the installed KServe version, or why there is none (install failed or timed out).
    """
    python = venv / "bin" / "python"
    stamp = venv / ".bench-installed"
    wanted = " ".join(KSERVE_REQUIREMENTS)
    if not (python.exists() and stamp.exists() and stamp.read_text().strip() == wanted):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with log_path.open("wb") as log:
                if not python.exists():
                    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300,
                                   stdout=log, stderr=subprocess.STDOUT)
                subprocess.run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
                                *KSERVE_REQUIREMENTS], check=True, timeout=timeout_s,
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return None, f"install timed out after {timeout_s:g} s (log: {log_path.relative_to(REPO)})"
        except (subprocess.CalledProcessError, OSError) as error:
            code = getattr(error, "returncode", None)
            return None, f"install failed (exit {code}; log: {log_path.relative_to(REPO)})"
        stamp.write_text(wanted + "\n")
    out = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('kserve'))"],
                         capture_output=True, text=True, timeout=60)
    return python, f"kserve {out.stdout.strip() or '?'}"
