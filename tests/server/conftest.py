"""Fixtures for the server tests: SavedModels built once per session, real server processes.

Each server is `python -m pipeline.serving ...` in a subprocess on a free loopback port, talked to
with real HTTP (helpers in harness.py). Processes are few and shared: `main_server` (session) serves
every model whose files never change; test modules that change files on disk start their own.
`main_server` is parametrized over batching on (`--enable_batching`) and off (the default), so every test
using it runs against both modes, and the server itself is asked which mode it is in.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.harness import (
    BATCHING_MODES,
    MAIN_MAX_BODY,
    MAIN_TIMEOUT_MS,
    Models,
    Server,
    install_version,
    metric_value,
    start_server,
)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    from tests.server import savedmodels

    root = tmp_path_factory.mktemp("templates")
    return Models(
        half_plus_two=savedmodels.export_half_plus_two(root / "hpt2", 0.5, 2.0),
        half_plus_three=savedmodels.export_half_plus_two(root / "hpt3", 0.5, 3.0),
        identity=savedmodels.export_identity(root / "identity"),
        linear_keras=savedmodels.export_linear_keras(root / "linear"),
    )


MAIN_CONFIG = """
model_config_list {{
  config {{
    name: 'half_plus_two'  base_path: '{root}/hpt'  model_platform: 'tensorflow'
    model_version_policy {{ specific {{ versions: 123 }} }}
    version_labels {{ key: 'Version_Label' value: 123 }}
  }}
  config {{
    name: 'hpt_all'  base_path: '{root}/hpt' model_platform: 'tensorflow'
    model_version_policy {{ all {{}} }}
    version_labels {{ key: 'stable' value: 123 }}
    version_labels {{ key: 'canary' value: 124 }}
    version_labels {{ key: 'ghost' value: 999 }}
  }}
  config {{
    name: 'hpt_latest2'  base_path: '{root}/three_versions' model_platform: 'tensorflow'
    model_version_policy {{ latest {{ num_versions: 2 }} }}
  }}
  config {{ name: 'default'  base_path: '{root}/hpt_cpu' model_platform: 'tensorflow' }}
  config {{ name: 'identity'  base_path: '{root}/identity' model_platform: 'tensorflow' }}
}}
"""


@pytest.fixture(scope="session", params=BATCHING_MODES)
def main_server(models: Models, tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest) -> Iterator[Server]:
    """One server for every test that does not change files: TF Serving's handler-test layout
    (half_plus_two 123 + 124 on disk, only 123 aspired, label Version_Label -> 123), policies and
    labels, the docker-test `default` model in `00000123`, identity models; CORS and Prometheus on,
    a 1 MiB body limit and a 3 s timeout."""
    root = tmp_path_factory.mktemp("main_models")
    install_version(models.half_plus_two, root / "hpt", "123")
    install_version(models.half_plus_three, root / "hpt", "124")
    for version, template in (("1", models.half_plus_two), ("2", models.half_plus_three),
                              ("3", models.half_plus_two)):
        install_version(template, root / "three_versions", version)
    install_version(models.half_plus_two, root / "hpt_cpu", "00000123")
    install_version(models.identity, root / "identity", "1")
    (root / "hpt" / "v2").mkdir()               # not a version: ignored
    (root / "hpt" / "125.tmp").mkdir()          # not a version: ignored
    config = root / "models.config"
    config.write_text(MAIN_CONFIG.format(root=root))
    server = start_server([
        f"--model_config_file={config}", "--rest_api_enable_cors_support", "--enable_prometheus",
        f"--rest_api_max_body_bytes={MAIN_MAX_BODY}", f"--rest_api_timeout_in_ms={MAIN_TIMEOUT_MS}",
        "--file_system_poll_wait_seconds=0",
        "--allow_version_labels_for_unavailable_models",  # the label `ghost` names version 999
    ], root / "server.log", batching=request.param)
    try:
        enabled = metric_value(server, "tensorflow_serving_batching_enabled")
        assert enabled == (1.0 if request.param == "batching_on" else 0.0)
    except BaseException:
        server.stop()
        raise
    yield server
    server.stop()
