"""Shared pieces of the browser suite: where Chromium is, how to wait for servers and pages."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import requests

from tests.support.net import free_port, wait_for

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "IDLE", "ROOT", "SCREENSHOTS_ENV", "free_port", "newest_version",
           "wait_http", "wait_idle"]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
SCREENSHOTS_ENV = "SCREENSHOTS_DIR"
"""Where the story's screenshots go: `make screenshots` sets it to docs/screenshots/; a plain test
run leaves it unset and they go to a temporary folder, so testing never changes the checkout."""


def wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 90.0) -> None:
    """Wait until ``url`` answers any HTTP status; fail fast if ``proc`` died."""

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            requests.get(url, timeout=1)
        except requests.RequestException:
            return False
        return True

    answers.__name__ = f"{url} answers"
    wait_for(answers, timeout_s, interval=0.2)


def newest_version(base: Path) -> int | None:
    """The highest version folder under a model's base path, None when it has none."""
    numbers = [int(p.name) for p in base.glob("*") if p.name.isdigit()] if base.is_dir() else []
    return max(numbers, default=None)


def wait_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit is connected and its script has finished running."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)
