"""The whole dashboard loads: app.py and every page render without an exception while the model
server is down, and TensorFlow is never imported on the way (the first paint must not wait
for it). Launched from another folder (without `.streamlit/config.toml`), it refuses to run and
says how to start it safely.

Run in a fresh interpreter, because other tests in the same pytest process may have imported
TensorFlow already (and Streamlit reads its config once per process); the server URL points at a
closed loopback port (a real "connection refused"), models live in a temporary folder and
autostart is off.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json, sys
from streamlit.testing.v1 import AppTest

at = AppTest.from_file(sys.argv[1], default_timeout=60).run()
report = {"pages": {}, "tensorflow": None}
report["pages"]["app"] = {"exception": [e.value for e in at.exception], "title": [t.value for t in at.title],
                          "error": [e.value for e in at.error]}
refused = [t.value for t in at.title] == ["Started without its safety settings"]
pages = () if refused else ("views/models.py", "views/serving.py", "views/predict.py", "views/train.py",
                           "views/traffic.py")
for page in pages:
    at.switch_page(page).run()
    report["pages"][page] = {"exception": [e.value for e in at.exception],
                             "title": [t.value for t in at.title], "error": [e.value for e in at.error]}
report["tensorflow"] = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
print("REPORT" + json.dumps(report))
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_app(cwd: Path, port: int, models: Path) -> tuple[dict, str]:
    """AppTest of app.py and every page in a fresh interpreter started in ``cwd``."""
    env = {**os.environ, "AUTOSTART_SERVER": "0", "SERVING_URL": f"http://127.0.0.1:{port}",
           "MODELS_DIR": str(models), "MODEL_BASE_PATH": str(models / "linear_model"),
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT / "dashboard" / "app.py")], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=240)
    lines = [line for line in done.stdout.splitlines() if line.startswith("REPORT")]
    assert lines, done.stdout + done.stderr
    return json.loads(lines[-1][len("REPORT"):]), done.stderr


def test_launched_from_another_folder_it_refuses_and_says_how(tmp_path: Path) -> None:
    """`cd ~ && streamlit run <checkout>/dashboard/app.py`: Streamlit's defaults (every interface,
    usage statistics, port 8501) are refused with the exact command, and no page runs."""
    report, stderr = run_app(tmp_path, closed_port(), tmp_path)
    app = report["pages"]["app"]
    assert app["exception"] == []
    assert app["title"] == ["Started without its safety settings"]
    (message,) = app["error"]
    assert "every interface" in message and "usage statistics" in message and "port 8501" in message
    assert f"cd {ROOT} && .venv/bin/python -m streamlit run dashboard/app.py" in message
    assert "make run" in message
    assert set(report["pages"]) == {"app"}  # no page ran (nothing trained, served or deleted)
    assert "streamlit run dashboard/app.py" in stderr  # said in the terminal too


def test_app_loads_every_page_without_tensorflow(tmp_path: Path) -> None:
    port = closed_port()
    report, _ = run_app(ROOT, port, tmp_path)
    for page, seen in report["pages"].items():
        assert seen["exception"] == [], (page, seen["exception"])
    assert report["pages"]["app"]["title"] == ["Train → serve → predict"]
    assert report["pages"]["views/serving.py"]["title"] == ["Serving"]
    serving_errors = report["pages"]["views/serving.py"]["error"]
    assert any(f"No model server answers at http://127.0.0.1:{port}" in e for e in serving_errors)
    assert any("No model server answers" in e for e in report["pages"]["views/predict.py"]["error"])
    assert report["pages"]["views/traffic.py"]["title"] == ["Traffic"]  # no logs yet: says how, no error
    assert report["pages"]["views/traffic.py"]["error"] == []
    assert report["tensorflow"] == [], "the dashboard imported TensorFlow: " + ", ".join(report["tensorflow"])


def test_a_grpc_request_from_the_dashboard_costs_no_tensorflow_and_no_terminal_noise(tmp_path: Path) -> None:
    """The dashboard's first gRPC requests (here to a closed port: the tutorial's rows, and typed
    tensors of any signature as the Predict page sends them) build TF Serving's messages
    without TensorFlow (nothing imports it or puts it in sys.modules: an audit hook watches), so no
    C++ start-up line reaches the terminal, and the process's stderr is never redirected for it."""
    from tests.support.no_tensorflow import SEEN, WATCH

    script = WATCH + (
        "import os\n"
        "import numpy as np\n"
        "from dashboard import tutorial\n"
        "from pipeline.client.errors import ClientError\n"
        "from pipeline.client.grpc import GrpcClient\n"
        "stderr = os.fstat(2)\n"
        f"client = GrpcClient('127.0.0.1:{closed_port()}', timeout=5)\n"
        "typed = {'city': np.asarray([b'paris'], dtype=object), 'count': np.asarray([2], dtype=np.int64)}\n"
        "for send in (lambda: client.predict('linear_model', tutorial.DEFAULT_ROWS, input_name='x'),\n"
        "             lambda: client.predict_arrays('three_inputs', typed)):\n"
        "    try:\n"
        "        send()\n"
        "    except ClientError as error:\n"
        "        print(error.message.split(':')[0])\n"
        f"print({SEEN}, (os.fstat(2).st_ino, os.fstat(2).st_dev) == (stderr.st_ino, stderr.st_dev))\n"
        "print('stderr still works', file=sys.stderr)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.stdout.splitlines() == ["UNAVAILABLE", "UNAVAILABLE", "[] True"], done.stderr
    assert done.stderr.strip() == "stderr still works"
