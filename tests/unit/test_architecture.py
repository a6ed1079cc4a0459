"""The layout keeps its promises: no import cycles, the UI on top, the server on its own, the
serving core free of front ends, leaves that are leaves, and on-disk state written only through
pipeline.state. Read from the source (tests/support/import_graph.py); the same
check prints with `python -m tests.support.import_graph`."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from tests.support import import_graph as ig

ROOT = Path(__file__).resolve().parents[2]


def test_the_project_keeps_every_rule() -> None:
    ok, text = ig.report()
    assert ok, "\n" + text


def test_the_command_prints_the_verdicts() -> None:
    done = subprocess.run([sys.executable, "-m", "tests.support.import_graph"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok   no import cycles" in done.stdout


def tree(root: Path, files: dict[str, str]) -> Path:
    """A throw-away project with `pipeline/` and `dashboard/` packages made of `files`."""
    for package in ig.PACKAGES:
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").touch()
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "__init__.py").touch()
        path.write_text(textwrap.dedent(text))
    return root


def test_a_cycle_hidden_in_a_function_is_found_and_printed(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "pipeline/client/rest.py": "def hint():\n    from pipeline.client import local_server\n",
        "pipeline/client/local_server.py": "from pipeline.client.rest import hint\n",
    })
    ok, text = ig.report(root)
    assert not ok
    assert "pipeline.client.local_server -> pipeline.client.rest -> pipeline.client.local_server" in text


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "pipeline/serving/rest/json_tensor.py": "from .examples import parse\n",
        "pipeline/serving/rest/examples.py": "from . import json_tensor\n",
    })
    graph = ig.project_edges(ig.all_imports(root), ig.project_modules(root))
    assert ig.cycles(graph) == [["pipeline.serving.rest.examples", "pipeline.serving.rest.json_tensor",
                                 "pipeline.serving.rest.examples"]]


def test_pipeline_importing_the_ui_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {"pipeline/train.py": "import streamlit as st\nfrom dashboard import utils\n"})
    ok, text = ig.report(root)
    assert not ok
    assert "pipeline.train:1 imports streamlit" in text and "pipeline.train:2 imports dashboard.utils" in text


def test_the_server_may_use_only_the_shared_leaves(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "pipeline/settings.py": "", "pipeline/store/versions.py": "",
        "pipeline/serving/source.py": "from pipeline import settings\nfrom pipeline.store import versions\n",
    })
    ok, text = ig.report(root)
    assert not ok
    assert "pipeline.serving.source:2 imports pipeline.store.versions" in text
    assert "imports pipeline.settings" not in text


def test_the_serving_core_may_not_import_a_front_end(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "pipeline/serving/rest/app.py": "from pipeline.serving import manager\n",
        "pipeline/serving/manager.py": "def f():\n    import pipeline.serving.grpc.service\n",
        "pipeline/serving/grpc/service.py": "",
        "pipeline/serving/__main__.py": "from pipeline.serving.rest import app\n",  # the entry point may
    })
    ok, text = ig.report(root)
    assert not ok
    assert "pipeline.serving.manager:2 imports pipeline.serving.grpc.service" in text
    assert "__main__" not in text


def test_a_leaf_importing_the_project_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "pipeline/store/records.py": "", "pipeline/settings.py": "",
        "pipeline/state/files.py": "from pipeline import settings\nfrom pipeline.state import locks\n",
        "pipeline/state/locks.py": "from pipeline.store import records\n",
    })
    ok, text = ig.report(root)
    assert not ok
    assert "pipeline.state.locks:1 imports pipeline.store.records" in text
    assert "pipeline.state.files" not in text  # other leaves and its own package are fine


def test_hand_written_state_outside_the_state_module_is_refused(tmp_path: Path) -> None:
    """A temp-file-then-rename write, a flock, or a signal to a bare pid anywhere but
    pipeline/state/ is named with its line; the same code inside pipeline/state/ is fine."""
    hand_written = ("import fcntl, os\n"
                    "def save(path, text):\n"
                    "    tmp = path.with_name(path.name + '.tmp')\n"
                    "    tmp.write_text(text)\n"
                    "    os.replace(tmp, path)\n"
                    "def stop(pid):\n"
                    "    os.killpg(pid, 15)\n")
    root = tree(tmp_path, {"dashboard/jobs.py": hand_written, "pipeline/state/files.py": hand_written})
    ok, text = ig.report(root)
    assert not ok
    for line in ("1: [flock]", "3: [tmp file]", "5: [rename]", "7: [signal]"):
        assert f"dashboard/jobs.py:{line}" in text, text
    assert "pipeline/state/files.py" not in text


def test_an_allowed_line_is_allowed_only_in_its_file(tmp_path: Path) -> None:
    claim = "    os.rename(tmp, target)\n"
    root = tree(tmp_path, {"pipeline/store/versions.py": "import os\ndef claim(tmp, target):\n" + claim,
                           "pipeline/store/other.py": "import os\ndef claim(tmp, target):\n" + claim})
    assert ig.hand_written_state(root) == ["pipeline/store/other.py:3: [rename] os.rename(tmp, target)"]


def test_a_front_end_reaching_past_the_request_api_is_refused(tmp_path: Path) -> None:
    root = tree(tmp_path, {
        "pipeline/serving/manager.py": "", "pipeline/serving/overload.py": "",
        "pipeline/serving/dataplane.py": "from pipeline.serving import manager, overload\n",
        "pipeline/serving/errors.py": "",
        "pipeline/serving/rest/app.py": ("from pipeline.serving.dataplane import DataPlane\n"
                                         "from pipeline.serving.errors import Code\n"
                                         "from pipeline.serving.rest import codec\n"),
        "pipeline/serving/rest/codec.py": "",
        "pipeline/serving/grpc/services.py": "from pipeline.serving.overload import Admission\n",
    })
    ok, text = ig.report(root)
    assert not ok
    assert "pipeline.serving.grpc.services:1 imports pipeline.serving.overload" in text
    assert "pipeline.serving.rest.app" not in text
