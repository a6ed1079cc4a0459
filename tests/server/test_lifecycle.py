"""Version lifecycle on a live server: hot loading, unloading, broken versions, missing base paths.

One server polls four base paths every POLL seconds; each test owns one model, so the tests do not
depend on each other's files. "Within two polls" is counted, not timed: the server lists a base
path once per poll (seen with inotify) and reconciles it before the next listing, so once it has
listed the base path NOTICE_POLLS times after a change, the change must show in the model's status.
Everything else waits for its event with a generous bound (loads are TensorFlow work on a shared
machine); how long noticing takes in seconds is `make bench`'s business.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.reliability.probes import IN_OPEN, DirectoryWatch
from tests.server.harness import (
    BATCHING_MODES,
    Models,
    Server,
    error_of,
    install_version,
    ok_json,
    start_server,
    wait_for,
)

POLL = 1.0
NOTICE_POLLS = 3  # two polls, plus one that may have been listing the folder when it changed
SETTLE = 120.0    # bound of every wait for an event (loads on a busy 2-core machine)

CONFIG = """
model_config_list {{
  config {{ name: 'hot' base_path: '{root}/hot' model_platform: 'tensorflow' }}
  config {{ name: 'deleting' base_path: '{root}/deleting' model_platform: 'tensorflow'
    model_version_policy {{ all {{}} }} }}
  config {{ name: 'broken' base_path: '{root}/broken' model_platform: 'tensorflow' }}
  config {{ name: 'emptied' base_path: '{root}/emptied' model_platform: 'tensorflow' }}
}}
"""


@pytest.fixture(scope="module", params=BATCHING_MODES)
def lifecycle(models: Models, tmp_path_factory: pytest.TempPathFactory,
              request: pytest.FixtureRequest) -> Iterator[tuple[Server, Path]]:
    root = tmp_path_factory.mktemp("lifecycle")
    install_version(models.half_plus_two, root / "deleting", "1")
    install_version(models.half_plus_three, root / "deleting", "2")
    install_version(models.half_plus_two, root / "broken", "1")
    install_version(models.half_plus_two, root / "emptied", "1")
    config = root / "models.config"
    config.write_text(CONFIG.format(root=root))
    server = start_server([f"--model_config_file={config}", f"--file_system_poll_wait_seconds={POLL}",
                           "--max_num_load_retries=0"],
                          root / "server.log", batching=request.param)
    yield server, root
    server.stop()


def states(server: Server, model: str) -> dict[str, str]:
    """{version: state} of a model, {} while it has none."""
    response = server.get(f"/v1/models/{model}")
    if response.status_code == 404:
        return {}
    return {entry["version"]: entry["state"] for entry in ok_json(response)["model_version_status"]}


@contextmanager
def listings(base: Path) -> Iterator[Callable[[], int]]:
    """A counter of the server's listings of `base` from now on (inotify opens of it, seen from its
    parent folder: one per poll; a missing folder is not opened, so not counted). It may count
    fewer (inotify merges identical events not yet read), never more: waiting for N is safe."""
    watch = DirectoryWatch([base.parent], mask=IN_OPEN)
    try:
        yield lambda: watch.drain().count((str(base.parent), base.name))
    finally:
        watch.close()


def wait_polls(count: Callable[[], int], polls: int = NOTICE_POLLS) -> None:
    wait_for(lambda: count() >= polls, SETTLE)


def predict(server: Server, model: str, x: float = 1.0) -> float:
    return ok_json(server.post(f"/v1/models/{model}:predict", {"instances": [x]}))["predictions"][0]


def test_missing_base_path_then_hot_load_and_swap(lifecycle, models: Models) -> None:
    server, root = lifecycle
    assert error_of(server.get("/v1/models/hot"), 404) == "Could not find any versions of model hot"
    assert error_of(server.post("/v1/models/hot:predict", {"instances": [1.0]}), 404) == (
        "Servable not found for request: Latest(hot)")

    with listings(root / "hot") as count:
        install_version(models.half_plus_two, root / "hot", "1")
        wait_polls(count)  # noticed, and loaded (in the same poll), within two polls
        assert states(server, "hot") == {"1": "AVAILABLE"}
    assert predict(server, "hot") == 2.5

    # Version 2 replaces 1 without a failed request in between: load first, then unload.
    install_version(models.half_plus_three, root / "hot", "2")
    answers = set()

    def swapped() -> bool:
        answers.add(predict(server, "hot"))
        return states(server, "hot") == {"2": "AVAILABLE", "1": "END"}

    wait_for(swapped, SETTLE, interval=0)
    assert answers <= {2.5, 3.5}
    assert predict(server, "hot") == 3.5
    status = ok_json(server.get("/v1/models/hot"))["model_version_status"]
    assert [entry["version"] for entry in status] == ["2", "1"]  # history, newest first


def test_deleted_version_is_unloaded_within_two_polls(lifecycle) -> None:
    server, root = lifecycle
    assert states(server, "deleting") == {"2": "AVAILABLE", "1": "AVAILABLE"}
    assert predict(server, "deleting") == 3.5
    with listings(root / "deleting") as count:
        shutil.rmtree(root / "deleting" / "2")
        wait_polls(count)
        assert states(server, "deleting") == {"2": "END", "1": "AVAILABLE"}
    assert error_of(server.post("/v1/models/deleting/versions/2:predict", {"instances": [1.0]}), 404) == (
        "Servable not found for request: Specific(deleting, 2)")
    assert predict(server, "deleting") == 2.5


def test_broken_version_ends_with_its_error_and_the_old_one_keeps_serving(lifecycle, models: Models) -> None:
    server, root = lifecycle
    assert states(server, "broken") == {"1": "AVAILABLE"}
    staging = root / "broken" / ".tmp-2"
    staging.mkdir()
    (staging / "saved_model.pb").write_bytes(b"this is not a SavedModel")
    staging.rename(root / "broken" / "2")

    wait_for(lambda: states(server, "broken").get("2") == "END", SETTLE)
    status = ok_json(server.get("/v1/models/broken/versions/2"))["model_version_status"][0]
    assert status["status"]["error_code"] != "OK"
    assert "SavedModel" in status["status"]["error_message"]
    assert states(server, "broken") == {"2": "END", "1": "AVAILABLE"}
    assert predict(server, "broken") == 2.5
    assert server.process.poll() is None

    install_version(models.half_plus_three, root / "broken", "3")  # a good newer version still loads
    wait_for(lambda: states(server, "broken") == {"3": "AVAILABLE", "2": "END", "1": "END"}, SETTLE)
    assert predict(server, "broken") == 3.5


def test_emptied_base_path_unloads_the_model(lifecycle) -> None:
    server, root = lifecycle
    assert predict(server, "emptied") == 2.5
    with listings(root / "emptied") as count:
        shutil.rmtree(root / "emptied" / "1")
        wait_polls(count)
        assert states(server, "emptied") == {"1": "END"}
    assert error_of(server.post("/v1/models/emptied:predict", {"instances": [1.0]}), 404) == (
        "Servable not found for request: Latest(emptied)")


def test_cors_and_metrics_are_off_by_default(lifecycle) -> None:
    server, _ = lifecycle
    response = server.get("/v1/models/deleting")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert server.get("/monitoring/prometheus/metrics").status_code == 404
