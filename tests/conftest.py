"""Test-wide settings, given the way a user gives them (the environment, read by `Settings.from_env()`
when each entry point starts): quiet TensorFlow, never auto-start a server from the dashboard, and
keep models and the embedded server's run folder out of the checkout, so `make test` leaves
`git status` as it found it. A test that needs other values sets them with `monkeypatch.setenv`."""

import os
import tempfile
from pathlib import Path

_SCRATCH = Path(tempfile.mkdtemp(prefix="tfsd-tests-"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["AUTOSTART_SERVER"] = "0"
os.environ.setdefault("MODELS_DIR", str(_SCRATCH / "models"))
os.environ.setdefault("SERVING_RUN_DIR", str(_SCRATCH / "run"))
