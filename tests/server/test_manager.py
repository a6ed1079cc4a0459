"""The servable manager's policy with a fake loader: order of loads and unloads, failures, lookups."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.serving.errors import DataLoss, ServingError
from pipeline.serving.lease import Leased
from pipeline.serving.manager import ServableManager
from pipeline.serving.model_config import ModelConfig, VersionPolicy
from tests.support.net import wait_for


class FakeServable(Leased):
    def __init__(self, name: str, version: int) -> None:
        super().__init__()
        self.name, self.version = name, version
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


class Recorder:
    """A loader that logs every load attempt and fails for versions listed in `broken`."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.broken: set[int] = set()
        self.loaded: list[FakeServable] = []

    def __call__(self, name: str, version: int, path: Path) -> FakeServable:
        self.events.append(f"load {version}")
        if version in self.broken:
            raise DataLoss(f"version {version} is corrupt")
        servable = FakeServable(name, version)
        self.loaded.append(servable)
        return servable


LATEST = VersionPolicy()


def make(tmp_path: Path, *versions: int, policy: VersionPolicy = LATEST, labels=None, **kwargs):
    for version in versions:
        (tmp_path / str(version)).mkdir(parents=True)
    recorder = Recorder()
    config = ModelConfig("m", tmp_path, policy, labels or {})
    manager = ServableManager([config], loader=recorder, poll_wait_seconds=0, **kwargs)
    return manager, recorder


def states(manager: ServableManager) -> dict[int, str]:
    names = {10: "START", 20: "LOADING", 30: "AVAILABLE", 40: "UNLOADING", 50: "END"}
    return {s.version: names[s.state] for s in manager.version_states("m")}


def test_new_version_is_loaded_before_the_old_is_unloaded(tmp_path: Path) -> None:
    manager, recorder = make(tmp_path, 1)
    manager.poll_once("m")
    (tmp_path / "2").mkdir()
    unloaded_when = []
    lifecycle = manager._models["m"]
    original = lifecycle.unload

    def spy(version):
        unloaded_when.append((version, list(recorder.events)))
        original(version)

    lifecycle.unload = spy
    manager.poll_once("m")
    assert unloaded_when == [(1, ["load 1", "load 2"])]
    assert states(manager) == {2: "AVAILABLE", 1: "END"}
    assert list(states(manager)) == [2, 1]  # newest first


def test_failed_load_keeps_the_old_version_and_is_not_retried_while_aspired(tmp_path: Path) -> None:
    manager, recorder = make(tmp_path, 1)
    manager.poll_once("m")
    recorder.broken.add(2)
    (tmp_path / "2").mkdir()
    manager.poll_once("m")
    manager.poll_once("m")
    assert recorder.events == ["load 1", "load 2"]
    assert states(manager) == {2: "END", 1: "AVAILABLE"}
    assert manager.servable("m").version == 1
    status = manager.model_status("m", 2).model_version_status[0].status
    assert (status.error_code, status.error_message) == (15, "version 2 is corrupt")  # DATA_LOSS

    recorder.broken.clear()  # removed and written again: tried again
    shutil.rmtree(tmp_path / "2")
    manager.poll_once("m")
    (tmp_path / "2").mkdir()
    manager.poll_once("m")
    assert states(manager) == {2: "AVAILABLE", 1: "END"}


def test_load_retries(tmp_path: Path) -> None:
    manager, recorder = make(tmp_path, 1, max_load_retries=2, load_retry_interval_seconds=0)
    recorder.broken.add(1)
    manager.poll_once("m")
    assert recorder.events == ["load 1"] * 3
    assert states(manager) == {1: "END"}


def test_latest_two_then_all_versions_disappear(tmp_path: Path) -> None:
    manager, recorder = make(tmp_path, 1, 2, 3, policy=VersionPolicy("latest", num_versions=2))
    manager.poll_once("m")
    assert recorder.events == ["load 3", "load 2"]
    assert states(manager) == {3: "AVAILABLE", 2: "AVAILABLE"}
    for version in (1, 2, 3):
        shutil.rmtree(tmp_path / str(version))
    manager.poll_once("m")
    assert states(manager) == {3: "END", 2: "END"}
    with pytest.raises(ServingError, match=r"Latest\(m\)"):
        manager.servable("m")


def test_lookups(tmp_path: Path) -> None:
    manager, _ = make(tmp_path, 1, 2, policy=VersionPolicy("all"), labels={"stable": 1, "gone": 7})
    manager.poll_once("m")
    assert manager.servable("m").version == 2
    assert manager.servable("m", version=1).version == 1
    assert manager.servable("m", label="stable").version == 1
    cases = [
        (("m",), {"version": 7}, "NOT_FOUND", "Servable not found for request: Specific(m, 7)"),
        (("m",), {"label": "gone"}, "NOT_FOUND", "Servable not found for request: Specific(m, 7)"),
        (("m",), {"label": "nope"}, "INVALID_ARGUMENT", "Unrecognized servable version label: nope"),
        (("x",), {"label": "stable"}, "INVALID_ARGUMENT", "Unrecognized servable version label: stable"),
        (("x",), {}, "NOT_FOUND", "Servable not found for request: Latest(x)"),
    ]
    for args, kwargs, code, message in cases:
        with pytest.raises(ServingError) as error:
            manager.servable(*args, **kwargs)
        assert (error.value.code, error.value.message) == (code, message)


def test_start_waits_for_the_first_poll_and_stop_unloads(tmp_path: Path) -> None:
    manager, _ = make(tmp_path, 4)
    manager.start()
    assert manager.servable("m").version == 4
    manager.stop()
    assert states(manager) == {4: "END"}


def test_a_failed_poll_changes_nothing_and_an_empty_base_path_unloads(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    base = tmp_path / "m"
    manager, recorder = make(base, 1)
    manager.poll_once("m")
    base.rename(tmp_path / "away")  # a rename-swap deploy, an NFS blip: the base path is gone
    for _ in range(3):
        manager.poll_once("m")
    assert states(manager) == {1: "AVAILABLE"} and manager.servable("m").version == 1
    assert sum("Could not find base path" in r.getMessage() for r in caplog.records) == 1  # logged once
    (tmp_path / "away").rename(base)
    manager.poll_once("m")
    assert states(manager) == {1: "AVAILABLE"} and recorder.events == ["load 1"]
    shutil.rmtree(base / "1")  # the base path exists and holds no version: unloaded, as TF Serving
    manager.poll_once("m")
    assert states(manager) == {1: "END"}


def test_an_unloaded_version_is_closed_once_its_last_request_lets_go(tmp_path: Path) -> None:
    manager, recorder = make(tmp_path, 1)
    manager.start()
    held = manager.acquire("m")
    (tmp_path / "2").mkdir()
    manager.poll_once("m")
    assert manager.servable("m").version == 2 and states(manager) == {2: "AVAILABLE", 1: "END"}
    old = recorder.loaded[0]
    assert held is old and old.closed == 0  # still in use by its request
    held.release()
    wait_for(lambda: old.closed == 1, 30)   # closed by the closer thread once let go
    shutil.rmtree(tmp_path / "2")
    shutil.rmtree(tmp_path / "1")
    manager.poll_once("m")
    wait_for(lambda: recorder.loaded[1].closed == 1, 30)  # nobody held it: closed at once
    manager.stop()
    assert old.closed == 1


def test_removing_a_model_stops_its_load_retries_at_once(tmp_path: Path) -> None:
    """The retry interval is ten minutes: the removal must not wait for it."""
    manager, recorder = make(tmp_path / "m", 1, max_load_retries=5, load_retry_interval_seconds=600)
    recorder.broken.add(1)
    manager.start()  # returns after the first failed attempt; the retries go on in the background
    retrying = manager._models["m"]
    assert recorder.events == ["load 1"] and states(manager) == {1: "LOADING"}
    manager.apply_config([])  # returns without waiting for the retry
    retrying.thread.join(60)  # the retry wait ends as soon as the model is removed
    assert not retrying.thread.is_alive() and recorder.events == ["load 1"]
    assert states(manager) == {1: "END"}
    manager.stop()
