"""Is this dashboard running with its safety settings? Checked once per script run by app.py.

Streamlit reads ``.streamlit/config.toml`` from the working directory only, so
``cd ~ && streamlit run <checkout>/dashboard/app.py`` starts it with Streamlit's defaults: every
interface, usage statistics sent, full error details, and port 8501, the model server's. What
can be fixed from inside the script (the ``client.*`` options) is fixed; what cannot (the address
and port are bound, the browser was told about telemetry) makes the app refuse to run, with the
exact command that starts it safely. Pure functions apart from :func:`apply_runtime_fixes`.
"""

from __future__ import annotations

import ipaddress
import shlex
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.client.urls import is_local_url, url_port
from pipeline.settings import PROJECT_ROOT

RUNTIME_FIXES = {"client.showErrorDetails": "none", "client.toolbarMode": "minimal"}
"""Options Streamlit lets a script set (``st.set_option``), with the safe value of each."""
CHECKED = ("server.address", "server.port", "browser.gatherUsageStats")
ALLOW_OPEN_ENV = "DASHBOARD_ALLOW_OPEN_ADDRESS"
"""Set to 1 to run on an explicit non-loopback ``--server.address`` (see SECURITY.md)."""
"""Options that are fixed by the time the script runs: wrong values make the app refuse."""


@dataclass(frozen=True)
class LaunchProblem:
    """One unsafe setting the script cannot change: the option, what is wrong, and why it matters."""

    option: str
    message: str


def safe_command() -> str:
    """The command that starts the dashboard with its settings, from any folder."""
    return f"cd {shlex.quote(str(PROJECT_ROOT))} && .venv/bin/python -m streamlit run dashboard/app.py"


def _is_loopback(address: str) -> bool:
    if address.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False


def launch_problems(options: Mapping[str, Any], serving_port: int,
                    allow_open_address: bool = False) -> list[LaunchProblem]:
    """What is unsafe in ``options`` (Streamlit option name → value) that only a restart fixes:
    an address that is not loopback (Streamlit's default binds every interface, and the
    dashboard can train, delete versions and start servers) unless ``allow_open_address`` (the
    user set :data:`ALLOW_OPEN_ENV`, e.g. behind a reverse proxy), usage statistics switched on,
    and the port of the model server (``serving_port``, TF Serving's 8501)."""
    problems = []
    address = str(options.get("server.address") or "")
    if not _is_loopback(address) and not (allow_open_address and address):
        shown = address or "every interface (Streamlit's default)"
        problems.append(LaunchProblem("server.address", f"it listens on {shown}, not on 127.0.0.1 only"))
    if options.get("browser.gatherUsageStats") not in (False, "false", "False"):
        problems.append(LaunchProblem("browser.gatherUsageStats",
                                      "usage statistics are sent to Streamlit (browser.gatherUsageStats)"))
    if int(options.get("server.port") or 0) == serving_port:
        problems.append(LaunchProblem("server.port", f"it took port {serving_port}, the model server's "
                                      "REST port (the dashboard's own is 8502)"))
    return problems


def refusal_text(problems: list[LaunchProblem]) -> str:
    """The message shown instead of the pages: every problem and the command that avoids them."""
    listed = "\n".join(f"- {p.message}" for p in problems)
    return ("This dashboard was started without its settings, so it stops here:\n\n"
            f"{listed}\n\nStreamlit reads `.streamlit/config.toml` from the working directory only. "
            "Stop it (Ctrl-C) and start it from the checkout:\n\n"
            f"`{safe_command()}`\n\nor `make run` in `{PROJECT_ROOT}`. (To listen on another address on "
            f"purpose, e.g. behind a reverse proxy, give `--server.address` and set `{ALLOW_OPEN_ENV}=1`.)")


def apply_runtime_fixes(get_option: Callable[[str], Any],
                        set_option: Callable[[str, Any], None]) -> list[str]:
    """Set every ``client.*`` option that differs from its safe value; the names changed."""
    changed = []
    for name, value in RUNTIME_FIXES.items():
        if get_option(name) != value:
            set_option(name, value)
            changed.append(name)
    return changed


def points_at_dashboard(serving_url: str, dashboard_port: int) -> bool:
    """True when ``serving_url`` is this dashboard itself (a local URL on the dashboard's port):
    anything answers HTTP there, so it would look like a healthy model server."""
    return is_local_url(serving_url) and url_port(serving_url) == dashboard_port


_told: set[str] = set()


def tell_terminal_once(text: str) -> None:
    """Print ``text`` to the terminal (stderr) once per process, so whoever launched the
    dashboard sees the refusal even before opening a browser."""
    if text not in _told:
        _told.add(text)
        print(text.replace("`", ""), file=sys.stderr, flush=True)
