"""Resident memory over version swaps (issue 19 item 2): the ``swaps`` section of ``python -m bench``.

Our server (batching off) polls a base path every 0.1 s; a new version appears (copied to a hidden
sibling, then renamed), the old one is unloaded and closed, again and again (200 times; 40 with
``--quick``), while one client sends 1-row predicts. The report gives the server's RSS after the
20th swap and after the last, and their ratio (the goal: at most 1.10). `tests/server/test_swap_memory.py`
is the short version that runs in the test suite.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from bench import contenders as cs

SETTLED_AFTER = 20
SWAP_TIMEOUT_S = 300.0


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc status")


def _states(running: cs.Running) -> dict[str, str]:
    with urllib.request.urlopen(f"{running.base_url}/v1/models/{cs.MODEL_NAME}", timeout=10) as answer:
        status = json.load(answer)
    return {s["version"]: s["state"] for s in status["model_version_status"]}


def _swapped(running: cs.Running, version: int) -> bool:
    states = _states(running)
    closed = f"Closed servable version {{name: {cs.MODEL_NAME} version: {version - 1}}}"
    return (states.get(str(version)) == "AVAILABLE" and states.get(str(version - 1)) == "END"
            and closed in running.log_path.read_text(errors="replace"))


def _install(template: Path, base: Path, version: int) -> None:
    staging = base / f".tmp-{version}"
    shutil.copytree(template, staging)
    staging.rename(base / str(version))


def run(version_dir: Path, body: bytes, work: Path, log_dir: Path, swaps: int,
        say: Callable[[str], None]) -> str:
    """The report section: RSS after swap 20 and after swap `swaps`, and their ratio."""
    title = "## Memory over version swaps\n\n"
    base = work / "swap_models" / cs.MODEL_NAME
    shutil.rmtree(base.parent, ignore_errors=True)
    base.mkdir(parents=True)
    _install(version_dir, base, 1)
    argv = (*cs.server(base, batching=False).argv, "--file_system_poll_wait_seconds=0.1")
    running = cs.start(cs.Contender("swaps", argv), log_dir)
    stop = threading.Event()
    answers = {"ok": 0, "failed": 0}

    def client() -> None:  # the light load: one client, one request at a time
        while not stop.is_set():
            try:
                status, _ = cs.post(running.url, body)
            except OSError:
                status = 0
            answers["ok" if status == 200 else "failed"] += 1

    load = threading.Thread(target=client, daemon=True)
    load.start()
    settled = final = 0
    try:
        for version in range(2, swaps + 2):
            _install(version_dir, base, version)
            deadline = time.monotonic() + SWAP_TIMEOUT_S
            while not _swapped(running, version):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"swap to version {version} did not finish:\n{running.log_tail()}")
                time.sleep(0.05)
            shutil.rmtree(base / str(version - 1))
            if version - 1 == SETTLED_AFTER:
                settled = _rss_bytes(running.process.pid)
            if version % 20 == 0:
                say(f"swaps: {version - 1} of {swaps}")
        final = _rss_bytes(running.process.pid)
    finally:
        stop.set()
        load.join(30)
        running.stop()
    ratio = final / settled
    return (title + f"{swaps} swaps (a new version appears, the old one is unloaded and closed) under one "
            "client's 1-row predicts; goal: RSS after the last swap at most 1.10 x RSS after the "
            f"{SETTLED_AFTER}th.\n\n"
            f"| RSS after swap {SETTLED_AFTER} | RSS after swap {swaps} | ratio | predicts OK / failed |\n"
            "|---|---|---|---|\n"
            f"| {settled / 2**20:.0f} MiB | {final / 2**20:.0f} MiB | {ratio:.3f} | "
            f"{answers['ok']} / {answers['failed']} |\n")
