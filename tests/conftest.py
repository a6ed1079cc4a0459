"""Test-wide settings, given the way a user gives them (the environment, read by `Settings.from_env()`
when each entry point starts), and forced whatever the developer's own environment says: every
variable `pipeline/settings.py` reads is cleared first, then models, the embedded server's run folder
and Hypothesis's storage go to a scratch folder (removed when the session ends), the model server's
REST URL and gRPC target point at a loopback port that refuses connections (held for the session, so
no server of the developer's is ever reached and no test server takes it), TensorFlow is quiet and the
dashboard never auto-starts a server. So `make test` leaves `git status` and the developer's folders
as it found them. A test that needs other values sets them with `monkeypatch.setenv`.

`pytest --reverse` (`make test PYTEST_ARGS=--reverse`) runs the collected tests in reverse order:
no test may depend on another one having run first.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_SETTINGS_VARIABLES = frozenset(re.findall(r'env(?:\.get\(|\[)"([A-Z_]+)"',
                                           (ROOT / "pipeline" / "settings.py").read_text()))
"""Every environment variable `Settings.from_env` reads, from its source, so a new one is covered."""
assert {"MODELS_DIR", "SERVING_RUN_DIR", "SERVING_URL", "GRPC_TARGET"} <= _SETTINGS_VARIABLES, \
    f"tests/conftest.py no longer finds the variables pipeline/settings.py reads: {_SETTINGS_VARIABLES}"
_OTHER_VARIABLES = ("SERVING_PARENT_PID", "DASHBOARD_ALLOW_OPEN_ADDRESS")
"""Read elsewhere by the project: the lifeline's parent (pipeline/lifeline.py) and the launch check's
open-address switch (dashboard/launch.py)."""

_SCRATCH = Path(tempfile.mkdtemp(prefix="tfsd-tests-"))
_REFUSING = socket.socket()
_REFUSING.bind(("127.0.0.1", 0))  # bound and never listening: connections are refused
_REFUSED_PORT = _REFUSING.getsockname()[1]

for _name in (*_SETTINGS_VARIABLES, *_OTHER_VARIABLES):
    os.environ.pop(_name, None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["HYPOTHESIS_STORAGE_DIRECTORY"] = str(_SCRATCH / "hypothesis")  # not .hypothesis/ in the checkout
os.environ.update({
    "AUTOSTART_SERVER": "0",
    "MODELS_DIR": str(_SCRATCH / "models"),
    "SERVING_RUN_DIR": str(_SCRATCH / "run"),
    "SERVING_URL": f"http://127.0.0.1:{_REFUSED_PORT}",
    "GRPC_TARGET": f"127.0.0.1:{_REFUSED_PORT}",
})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--reverse", action="store_true", default=False,
                     help="run the collected tests in reverse order (files and the tests in them)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--reverse"):
        items.reverse()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the scratch folder and release the refusing port."""
    shutil.rmtree(_SCRATCH, ignore_errors=True)
    _REFUSING.close()
