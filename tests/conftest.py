"""Test-wide settings: quiet TensorFlow, never auto-start a server from the dashboard,
and keep every test's models in a temporary folder."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["AUTOSTART_SERVER"] = "0"
