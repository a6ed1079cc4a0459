"""Commands a user can copy: repeat a call with curl or Python, start the embedded server.

Pure text builders, so every place that shows a snippet (the dashboard, an error hint, the README)
shows the same one.
"""

from __future__ import annotations

import contextlib
import json
import shlex
from pathlib import Path
from typing import Any

from pipeline.settings import PROJECT_ROOT


def start_command(port: int, model_name: str, base_path: Path | str) -> str:
    """The shell command that starts the embedded server for `model_name` on `port` (the base
    path relative to the project root when it lies inside it)."""
    base = Path(base_path)
    with contextlib.suppress(ValueError):
        base = base.resolve().relative_to(PROJECT_ROOT)
    return (f"python -m pipeline.serving --rest_api_port {port} --model_name {model_name} "
            f"--model_base_path {base}")


def curl_command(url: str, body: dict[str, Any] | None = None) -> str:
    """A shell command that repeats the call: a GET without ``body``, else a JSON POST."""
    if body is None:
        return f"curl -sS {shlex.quote(url)}"
    return (f"curl -sS -X POST {shlex.quote(url)} \\\n  -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(json.dumps(body))}")


def python_snippet(url: str, body: dict[str, Any] | None = None) -> str:
    """A Python ``requests`` script that repeats the call and prints the answer.

    The body is embedded as the exact JSON text sent (``NaN`` tokens included, which the
    ``json=`` argument of requests would refuse)."""
    lines = ["import requests", "", f"url = {url!r}"]
    if body is None:
        lines.append("response = requests.get(url, timeout=10)")
    else:
        lines += [f"body = {json.dumps(body)!r}",
                  'response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, '
                  "timeout=10)"]
    lines.append("print(response.status_code, response.json())")
    return "\n".join(lines) + "\n"


def curl_file_command(url: str, filename: str = "request.json") -> str:
    """A shell command that POSTs the JSON body saved in ``filename`` (for bodies too large to
    paste into a command line)."""
    return (f"curl -sS -X POST {shlex.quote(url)} \\\n  -H 'Content-Type: application/json' \\\n"
            f"  -d @{shlex.quote(filename)}")


def python_file_snippet(url: str, filename: str = "request.json") -> str:
    """A Python ``requests`` script that POSTs the JSON body saved in ``filename``."""
    return "\n".join([
        "import requests", "", f"url = {url!r}",
        f"with open({filename!r}, 'rb') as body:",
        '    response = requests.post(url, data=body, headers={"Content-Type": "application/json"},',
        "                             timeout=60)",
        "print(response.status_code, response.json())"]) + "\n"
