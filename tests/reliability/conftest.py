"""Fixtures for the reliability suite: real `python -m pipeline.serving` processes on loopback,
attacked with load, churn, hostile input, crashes and probes for exposure.

Shared and session-scoped: the SavedModel templates and `guarded_server`, which the hostile-input and
limits tests share (they never change its files). Tests that change files or kill processes start
their own servers with `start_server` from tests/server/harness.py.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from tests.server.harness import Server, install_version, ok_json, start_server, wait_for

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODEL = "linear_model"
LOAD_TIMEOUT = 60.0  # a small SavedModel load on a busy 2-core machine, with margin
GUARD_MAX_BODY = 1024 * 1024
GUARD_TIMEOUT_MS = 2000


def linear_model(bias: float, weights: tuple[float, float] = (1.0, 0.0)):
    """The tutorial's Keras model (`Dense(1)` on input `inputs` of shape (2,)) with fixed weights."""
    import keras

    inp = keras.Input(shape=(2,), name="inputs")
    out = keras.layers.Dense(1, name="outputs")(inp)
    model = keras.Model(inp, out)
    model.layers[-1].set_weights([np.array([[weights[0]], [weights[1]]], "float32"),
                                  np.array([bias], "float32")])
    return model


def export_linear(base_path: Path, bias: float, weights: tuple[float, float] = (1.0, 0.0)) -> int:
    """Export a linear model with `pipeline.store.versions.export_version`; return its version number."""
    from pipeline.store import versions as registry

    return registry.export_version(linear_model(bias, weights), base_path).version


def states(server: Server, model: str = MODEL) -> dict[int, str]:
    """{version: state} of a model ({} while it has none, or while the server does not answer)."""
    import requests

    try:
        response = server.get(f"/v1/models/{model}")
    except requests.ConnectionError:
        return {}
    if response.status_code != 200:
        return {}
    return {int(s["version"]): s["state"] for s in response.json()["model_version_status"]}


def wait_states(server: Server, expected: dict[int, str], model: str = MODEL,
                timeout: float = LOAD_TIMEOUT) -> None:
    """Wait until the model's status has (at least) the given {version: state} entries."""
    wait_for(lambda: all(states(server, model).get(v) == s for v, s in expected.items()), timeout, 0.05)


def predict(server: Server, rows: list[list[float]], model: str = MODEL, version: int | None = None) -> list:
    path = f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "") + ":predict"
    return ok_json(server.post(path, {"instances": rows}))["predictions"]


@dataclass(frozen=True)
class Templates:
    """SavedModel version dirs to copy into base paths."""

    linear: Path       # tutorial model y = 2 x1 - x2 + 3, exported by the registry
    identity: Path     # tests/server/savedmodels.py: one signature per dtype, plus `slow`


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Templates:
    from tests.server import savedmodels

    root = tmp_path_factory.mktemp("reliability-templates")
    version = export_linear(root / "linear", 3.0, (2.0, -1.0))
    return Templates(linear=root / "linear" / str(version),
                     identity=savedmodels.export_identity(root / "identity"))


GUARD_CONFIG = """
model_config_list {{
  config {{ name: '{model}' base_path: '{root}/models/{model}' model_platform: 'tensorflow'
    version_labels {{ key: 'stable' value: 1 }} }}
  config {{ name: 'identity' base_path: '{root}/models/identity' model_platform: 'tensorflow' }}
}}
"""


@dataclass(frozen=True)
class Guarded:
    """`guarded_server` and the folders around it."""

    server: Server
    root: Path             # holds models/, models.config, the decoys and the log
    config: Path
    decoys: tuple[Path, ...]  # valid SavedModel folders outside every configured base path
    rss_at_start: int


@pytest.fixture(scope="session")
def guarded_server(templates: Templates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guarded]:
    """One server shared by the hostile-input and limits tests: `linear_model` (label `stable` -> 1)
    and `identity` under `<root>/models`, a 1 MiB body limit, a 2 s timeout, Prometheus on, CORS at
    its default (off), bound at its default address. Next to the base paths sit decoy SavedModels
    (`<root>/decoy/1`, `<root>/models/decoy/1`, `<root>/models/linear_model/../etc`) that no request
    may ever make the server read."""
    from tests.reliability.probes import rss_bytes

    root = tmp_path_factory.mktemp("guarded")
    install_version(templates.linear, root / "models" / MODEL, "1")
    install_version(templates.identity, root / "models" / "identity", "1")
    decoys = []
    for folder in (root / "decoy", root / "models" / "decoy", root / "models" / "etc"):
        decoys.append(install_version(templates.linear, folder, "1"))
    config = root / "models.config"
    config.write_text(GUARD_CONFIG.format(root=root, model=MODEL))
    server = start_server([
        f"--model_config_file={config}", f"--rest_api_max_body_bytes={GUARD_MAX_BODY}",
        f"--rest_api_timeout_in_ms={GUARD_TIMEOUT_MS}", "--enable_prometheus", "--rest_api_num_threads=4",
        "--file_system_poll_wait_seconds=1",
    ], root / "server.log")
    try:
        wait_states(server, {1: "AVAILABLE"})
        wait_states(server, {1: "AVAILABLE"}, "identity")
        for _ in range(20):  # warm up before the memory baseline
            predict(server, [[1.0, 2.0]])
        yield Guarded(server, root, config, tuple(decoys), rss_bytes(server.process.pid))
    finally:
        server.stop()


def copy_version(source: Path, base_path: Path, version: str) -> Path:
    """Copy a version dir under a temporary name and return it (the caller breaks it, then renames)."""
    staging = base_path / f".staging-{version}"
    shutil.copytree(source, staging)
    return staging
