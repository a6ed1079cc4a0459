"""Copy local folders into TensorFlow's in-memory file system (`ram://`), then run the server.

`python tests/server/launchers/ram_fs_server.py --copy=LOCAL=ram://... [--copy=...] FLAGS...`:
`ram://` lives in one process, so the server process itself must fill it before it serves. The
`--copy` arguments are taken out; every other argument goes to `python -m pipeline.serving`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout, for `pipeline`


def copy_tree(source: str, target: str) -> None:
    import tensorflow as tf

    if os.path.isfile(source):
        tf.io.gfile.makedirs(target.rsplit("/", 1)[0])
        tf.io.gfile.copy(source, target, overwrite=True)
        return
    for folder, _, files in os.walk(source):
        relative = os.path.relpath(folder, source)
        destination = target if relative == "." else f"{target}/{relative}"
        tf.io.gfile.makedirs(destination)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), f"{destination}/{name}", overwrite=True)


def main() -> int:
    copies = [arg.removeprefix("--copy=") for arg in sys.argv[1:] if arg.startswith("--copy=")]
    for pair in copies:
        source, target = pair.split("=", 1)
        copy_tree(source, target)
    from pipeline.serving.__main__ import main as serve

    return serve([arg for arg in sys.argv[1:] if not arg.startswith("--copy=")])


if __name__ == "__main__":
    sys.exit(main())
