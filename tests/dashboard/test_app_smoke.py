"""The whole dashboard loads: app.py and every page it registers (read from app.py, so a new page is
covered without editing this file) render without an exception while the model server is down, and
TensorFlow is never imported on the way (the first paint must not wait for it). Launched from
another folder (without `.streamlit/config.toml`), it refuses to run and says how to start it
safely. Without the project or one of its packages importable, it says which and shows the command
that installs them, never Streamlit's redacted error.

Run in a fresh interpreter, because other tests in the same pytest process may have imported
TensorFlow already (and Streamlit reads its config once per process); the server URL points at a
closed loopback port (a real "connection refused"), models live in a temporary folder and
autostart is off.
"""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "dashboard" / "app.py"

SCRIPT = r"""
import json, sys
from importlib.abc import MetaPathFinder


class Missing(MetaPathFinder):  # the named top-level packages fail to import, as if not installed

    def __init__(self, names):
        self.names = names

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


app, pages, missing = sys.argv[1], json.loads(sys.argv[2]), [n for n in sys.argv[3].split(",") if n]
sys.meta_path.insert(0, Missing(set(missing)))
from streamlit.testing.v1 import AppTest


def seen(at):
    return {"exception": [e.value for e in at.exception], "title": [t.value for t in at.title],
            "error": [e.value for e in at.error]}


at = AppTest.from_file(app, default_timeout=60).run()
report = {"pages": {"app": seen(at)}, "tensorflow": None}
refused = [t.value for t in at.title] == ["Started without its safety settings"]
for page in () if refused else pages:
    at.switch_page(page).run()
    report["pages"][page] = seen(at)
report["tensorflow"] = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
print("REPORT" + json.dumps(report))
"""


def registered_pages() -> tuple[str, list[str]]:
    """``(default page, the other pages)`` app.py registers with ``st.Page(VIEWS / "<file>", ...)``,
    as AppTest's ``switch_page`` paths (``views/<file>``), in the order app.py lists them."""
    default, others = None, []
    for node in ast.walk(ast.parse(APP.read_text())):
        is_page = isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "Page"
        if not is_page:
            continue
        where = node.args[0]
        assert isinstance(where, ast.BinOp) and isinstance(where.right, ast.Constant), ast.dump(where)
        page = (node.lineno, f"views/{where.right.value}")
        if any(k.arg == "default" and getattr(k.value, "value", None) is True for k in node.keywords):
            default = page[1]
        else:
            others.append(page)
    assert default is not None, "app.py registers no default page"
    return default, [page for _, page in sorted(others)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_app(cwd: Path, port: int, models: Path, pages: list[str] | None = None,
            missing: tuple[str, ...] = ()) -> tuple[dict, str]:
    """AppTest of app.py, then of each of ``pages`` (default: every page app.py registers), in a
    fresh interpreter started in ``cwd`` where the packages named in ``missing`` do not import."""
    pages = registered_pages()[1] if pages is None else pages
    env = {**os.environ, "AUTOSTART_SERVER": "0", "SERVING_URL": f"http://127.0.0.1:{port}",
           "MODELS_DIR": str(models), "MODEL_BASE_PATH": str(models / "linear_model"),
           "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(APP), json.dumps(pages), ",".join(missing)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=240)
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
    default, others = registered_pages()
    assert default == "views/home.py", default
    assert {"views/deploy.py", "views/batch.py", "views/load.py", "views/traffic.py"} <= set(others), others
    port = closed_port()
    report, _ = run_app(ROOT, port, tmp_path)
    assert list(report["pages"]) == ["app", *others]  # every registered page ran
    for page, seen in report["pages"].items():
        assert seen["exception"] == [], (page, seen["exception"])
        assert seen["title"], f"{page} shows no title"
        assert not any("cannot start" in title for title in seen["title"]), (page, seen["error"])
    assert report["pages"]["app"]["title"] == ["Train → serve → predict"]
    assert report["pages"]["views/serving.py"]["title"] == ["Serving"]
    serving_errors = report["pages"]["views/serving.py"]["error"]
    assert any(f"No model server answers at http://127.0.0.1:{port}" in e for e in serving_errors)
    assert any("No model server answers" in e for e in report["pages"]["views/predict.py"]["error"])
    assert any("No model server answers" in e for e in report["pages"]["views/load.py"]["error"])
    assert report["pages"]["views/traffic.py"]["title"] == ["Traffic"]  # no logs yet: says how, no error
    assert report["pages"]["views/traffic.py"]["error"] == []
    assert report["tensorflow"] == [], "the dashboard imported TensorFlow: " + ", ".join(report["tensorflow"])


def test_without_the_project_installed_it_says_so_and_shows_the_fix(tmp_path: Path) -> None:
    """`streamlit run dashboard/app.py` in a Python where the project was never installed (only
    `dashboard/` on sys.path, as Streamlit puts it): a message naming the cause and the install
    command for that very Python, in the page and in the terminal; no page runs."""
    report, stderr = run_app(ROOT, closed_port(), tmp_path, pages=["views/train.py"],
                             missing=("dashboard", "pipeline"))
    app = report["pages"]["app"]
    assert app["exception"] == []
    assert app["title"] == ["The dashboard cannot start"]
    (message,) = app["error"]
    assert "The project is not installed" in message and "import dashboard" in message
    fix = f"cd {ROOT} && {sys.executable} -m pip install -r requirements.txt"
    assert fix in message
    assert report["pages"]["views/train.py"]["title"] == ["The dashboard cannot start"]  # no page runs
    assert fix in stderr  # said in the terminal too


def test_a_missing_package_is_named_with_the_fix_on_the_page_that_needs_it(tmp_path: Path) -> None:
    """Plotly is imported only by the pages that chart: Home still works, the Train page says that
    `plotly` is missing and how to install it, instead of a redacted error."""
    report, _ = run_app(ROOT, closed_port(), tmp_path, pages=["views/train.py"], missing=("plotly",))
    assert report["pages"]["app"]["title"] == ["Train → serve → predict"]
    train = report["pages"]["views/train.py"]
    assert train["exception"] == []
    assert train["title"] == ["The dashboard cannot start"]
    (message,) = train["error"]
    assert "The package `plotly` is missing" in message
    assert f"{sys.executable} -m pip install -r requirements.txt" in message


def test_a_bad_setting_in_the_environment_is_a_message(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("REST_API_PORT", "eighty")
    report, _ = run_app(ROOT, closed_port(), tmp_path, pages=[])
    app = report["pages"]["app"]
    assert app["exception"] == [] and app["title"] == ["The dashboard cannot start"]
    (message,) = app["error"]
    assert "bad setting in the environment" in message and "eighty" in message


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
