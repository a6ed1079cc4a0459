"""The README's Streamlit way, exactly as a new user runs it: a fresh virtualenv, `pip install -r
requirements.txt` in the checkout, then `streamlit run dashboard/app.py` there; the Home page opens
in Chromium, with no Makefile, no PYTHONPATH and nothing of this test's own virtualenv.

The fresh venv lives in the user's cache folder (`$XDG_CACHE_HOME` or `~/.cache`, under
`tf-serving-dashboard/`), never in the checkout, keyed by requirements.txt, pyproject.toml and the
Python version, so its big download (TensorFlow) happens once. Every run still runs the user's
`pip install -r requirements.txt` in it from this checkout: the pins are already there, and the
project (`-e .`) is installed again from here, so a cached venv never serves another checkout's code.
A lock keeps two test runs (two checkouts) from using the venv at the same time; venvs of other
keys unused for two weeks are removed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.browser import IDLE, ROOT, free_port, wait_http
from tests.support.net import stop_process

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(3600)]

COMPLETE = ".tfsd-complete"
"""Written into a venv once `pip install -r requirements.txt` succeeded in it; a venv without it is
rebuilt (an install that was interrupted)."""
UNUSED_DAYS = 14
INSTALL_TIMEOUT_S = 3000


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tf-serving-dashboard"


def venv_key() -> str:
    """What the venv's contents depend on: the two files pip reads and the Python that runs them."""
    digest = hashlib.sha256()
    for name in ("requirements.txt", "pyproject.toml"):
        digest.update((ROOT / name).read_bytes())
    digest.update(f"{sys.version} {getattr(sys, '_base_executable', sys.executable)}".encode())
    return digest.hexdigest()[:16]


def user_env(venv: Path) -> dict[str, str]:
    """The environment of a shell where the user ran `. <venv>/bin/activate`: this test's own venv,
    PYTHONPATH and PYTHONHOME are not in it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "VIRTUAL_ENV")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return env


def untracked() -> set[str] | None:
    """The files git shows as new (untracked, not ignored) in the checkout, or None when it is not
    a git checkout: what an install may add must be ignored (`*.egg-info/` in .gitignore)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return None
    return {line[3:] for line in done.stdout.splitlines() if line.startswith("??")}


def prune(root: Path, keep: Path) -> None:
    """Remove the venvs of other keys that no run has used for UNUSED_DAYS (caller holds the lock)."""
    for venv in root.glob("venv-*"):
        stamp = venv / COMPLETE
        used = stamp.stat().st_mtime if stamp.exists() else venv.stat().st_mtime
        if venv != keep and time.time() - used > UNUSED_DAYS * 86400:
            shutil.rmtree(venv, ignore_errors=True)


@dataclass(frozen=True)
class FreshVenv:
    path: Path
    built_s: float | None  # creating the venv, None when it came from the cache
    install_s: float       # `pip install -r requirements.txt`


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshVenv]:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"venv-{venv_key()}"
    log = tmp_path_factory.mktemp("fresh-venv") / "pip.log"
    with (root / "venvs.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the module's tests are done
        built_s = None
        if not (venv / COMPLETE).exists():
            shutil.rmtree(venv, ignore_errors=True)
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=600)
            built_s = time.monotonic() - started
        new_before = untracked()
        started = time.monotonic()
        with log.open("w") as out:
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-r", "requirements.txt"]
            done = subprocess.run(pip, cwd=ROOT, env=user_env(venv), stdout=out, stderr=subprocess.STDOUT,
                                  timeout=INSTALL_TIMEOUT_S)
        install_s = time.monotonic() - started
        assert done.returncode == 0, log.read_text()[-5000:]
        (venv / COMPLETE).write_text(f"pip install -r requirements.txt from {ROOT}\n")
        created = "cached" if built_s is None else f"created in {built_s:.0f} s"
        print(f"\nfresh venv {venv.name} ({created}): pip install -r requirements.txt in {install_s:.0f} s")
        added = (untracked() or set()) - (new_before or set())
        assert not added, f"pip install -r requirements.txt left files git does not ignore: {sorted(added)}"
        prune(root, venv)
        yield FreshVenv(venv, built_s, install_s)


def test_requirements_install_the_project_importable_from_any_folder(fresh_venv: FreshVenv,
                                                                     tmp_path: Path) -> None:
    """`-e .` in requirements.txt: `dashboard` and `pipeline` import from another folder, from
    this checkout (not from another one that used the cached venv before)."""
    script = ("import json, dashboard, pipeline\n"
              "print(json.dumps([list(dashboard.__path__), list(pipeline.__path__)]))")
    done = subprocess.run([str(fresh_venv.path / "bin" / "python"), "-c", script], cwd=tmp_path,
                          env=user_env(fresh_venv.path), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    dashboard_paths, pipeline_paths = json.loads(done.stdout)
    assert dashboard_paths[0] == str(ROOT / "dashboard"), dashboard_paths  # a namespace package
    assert pipeline_paths == [str(ROOT / "pipeline")]


@pytest.mark.parametrize("launcher", [["streamlit"], ["python", "-m", "streamlit"]],
                         ids=["streamlit", "python -m streamlit"])
def test_streamlit_run_from_the_checkout_opens_home(fresh_venv: FreshVenv, browser, launcher: list[str],
                                                    tmp_path: Path) -> None:
    """`streamlit run dashboard/app.py` (the venv's console script, where only `dashboard/` is on
    sys.path) and `python -m streamlit run dashboard/app.py` (where the checkout is too), from the
    checkout: the Home page draws its live state, read through the project's own modules."""
    from playwright.sync_api import expect

    port = free_port()
    models = tmp_path / "models"
    env = {**user_env(fresh_venv.path), "AUTOSTART_SERVER": "0", "MODELS_DIR": str(models),
           "SERVING_RUN_DIR": str(tmp_path / "run")}
    command = [str(fresh_venv.path / "bin" / launcher[0]), *launcher[1:], "run", "dashboard/app.py",
               f"--server.port={port}"]
    with (tmp_path / "streamlit.log").open("w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/_stcore/health", proc)
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_selector(IDLE)
        expect(page.get_by_role("heading", name="Train → serve → predict")).to_be_visible()
        # the story's live state: the versions folder from MODELS_DIR, empty, and the server down
        expect(page.get_by_text(str(models / "linear_model")).first).to_be_visible()
        expect(page.get_by_text("No version yet.")).to_be_visible()
        expect(page.get_by_text("The dashboard cannot start")).to_have_count(0)
        expect(page.locator("[data-testid=stException]")).to_have_count(0)
    finally:
        context.close()
        stop_process(proc)
    assert "Traceback" not in (tmp_path / "streamlit.log").read_text()
