"""A watch for fresh-process tests: did anything import `tensorflow` or put it in `sys.modules`?

`WATCH` is Python source to run first in a child process. It installs an audit hook that records
every import of a `tensorflow` or `tensorflow_serving` module (the `import` audit event fires for
each module the import system loads, a package's submodules included) and, at every audit event
(imports, file opens, compiles: many per call), any `tensorflow*` key present in `sys.modules`,
which catches a module put there by hand, not imported. `SEEN` names the list it fills.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SEEN = "_tensorflow_seen"
WATCH = f"""
import sys
{SEEN} = []

def _watch(event, args):
    if event == "import" and str(args[0]).split(".")[0] in ("tensorflow", "tensorflow_serving"):
        {SEEN}.append("import " + str(args[0]))
    for name in ("tensorflow", "tensorflow_serving"):
        if name in sys.modules and "sys.modules has " + name not in {SEEN}:
            {SEEN}.append("sys.modules has " + name)

sys.addaudithook(_watch)
"""


def run_watched(script: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `WATCH` then `script` in a fresh `python -c` from the checkout; output captured as text."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", WATCH + script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
