"""Reloading the model config while serving: `ServableManager.apply_config` with a fake loader,
and `ModelConfigPoller` reading a models.config file (no TensorFlow here, no sleeps: every wait
polls a condition)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from tensorflow_serving.config import model_server_config_pb2

from pipeline.serving.config_poll import ModelConfigPoller
from pipeline.serving.errors import ServingError
from pipeline.serving.manager import ServableManager
from pipeline.serving.model_config import ModelConfig, VersionPolicy
from tests.server.test_manager import Recorder
from tests.support.net import wait_for

NAMES = {10: "START", 20: "LOADING", 30: "AVAILABLE", 40: "UNLOADING", 50: "END"}


def states(manager: ServableManager, name: str) -> dict[int, str]:
    return {s.version: NAMES[s.state] for s in manager.version_states(name)}


def versions(root: Path, *numbers: int) -> Path:
    for number in numbers:
        (root / str(number)).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def running(tmp_path: Path):
    """A started manager (poll every hour: only config changes make it act) serving model a 1..3."""
    base = versions(tmp_path / "a", 1, 2, 3)
    manager = ServableManager([ModelConfig("a", base)], loader=Recorder(), poll_wait_seconds=3600)
    manager.start()
    yield manager, tmp_path
    manager.stop()


def test_a_model_added_loads_before_apply_returns_and_a_removed_one_unloads(running) -> None:
    manager, root = running
    b = versions(root / "b", 7)
    manager.apply_config([ModelConfig("a", root / "a"), ModelConfig("b", b)])
    assert manager.servable("b").version == 7
    manager.apply_config([ModelConfig("b", b)])
    with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(a\)"):
        manager.servable("a")
    # Unloaded by the removed model's own thread, soon; the history stays answerable (upstream's monitor)
    wait_for(lambda: states(manager, "a") == {3: "END"}, 30)
    assert manager.model_status("a").model_version_status[0].state == 50


def test_policy_and_label_changes_apply_to_a_running_model(running) -> None:
    manager, root = running
    assert manager.servable("a").version == 3
    specific = VersionPolicy("specific", versions=(1, 2))
    manager.apply_config([ModelConfig("a", root / "a", specific)])
    wait_for(lambda: states(manager, "a") == {3: "END", 2: "AVAILABLE", 1: "AVAILABLE"}, 30)
    manager.apply_config([ModelConfig("a", root / "a", specific, {"stable": 1})])
    assert manager.servable("a", label="stable").version == 1
    manager.apply_config([ModelConfig("a", root / "a", specific, {"stable": 2})])
    assert manager.servable("a", label="stable").version == 2
    with pytest.raises(ServingError, match="Unrecognized servable version label: canary"):
        manager.servable("a", label="canary")


def test_a_removed_model_added_again_loads_again(running) -> None:
    manager, root = running
    manager.apply_config([])
    wait_for(lambda: states(manager, "a") == {3: "END"}, 30)
    manager.apply_config([ModelConfig("a", root / "a")])
    assert manager.servable("a").version == 3


def test_invalid_configs_change_nothing(running) -> None:
    manager, root = running
    with pytest.raises(ServingError, match="Illegal to list model b multiple times") as error:
        manager.apply_config([ModelConfig("b", root / "b"), ModelConfig("b", root / "c")])
    assert error.value.code == "INVALID_ARGUMENT"
    assert manager.servable("a").version == 3 and states(manager, "b") == {}


def test_a_model_server_config_message_is_applied_and_an_empty_one_ignored(running) -> None:
    manager, root = running
    manager.apply_config(model_server_config_pb2.ModelServerConfig())  # no config oneof: no action
    assert manager.servable("a").version == 3
    message = model_server_config_pb2.ModelServerConfig()
    entry = message.model_config_list.config.add(name="b", base_path=str(versions(root / "b", 5)),
                                                  model_platform="tensorflow")
    entry.model_version_policy.all.SetInParent()
    manager.apply_config(message)
    assert manager.servable("b").version == 5
    wait_for(lambda: states(manager, "a") == {3: "END"}, 30)  # a was removed: unloaded by its thread


def test_an_added_model_that_fails_to_load_is_reported(running) -> None:
    manager, root = running
    manager._shared.loader.broken.add(4)
    expected = ("1 model(s) did not become available: "
                "{{{name: c version: 4} due to error: version 4 is corrupt}, }")
    with pytest.raises(ServingError, match=re.escape(expected)):
        manager.apply_config([ModelConfig("a", root / "a"), ModelConfig("c", versions(root / "c", 4))])
    assert states(manager, "c") == {4: "END"} and manager.servable("a").version == 3


CONFIG = "model_config_list {{ {} }}"
ENTRY = "config {{ name: '{name}' base_path: '{path}' model_platform: 'tensorflow' {extra} }}"


def write_config(path: Path, *entries: dict) -> None:
    path.write_text(CONFIG.format(" ".join(ENTRY.format(**{"extra": "", **e}) for e in entries)))


def test_the_poller_applies_changes_and_keeps_the_config_when_the_file_is_bad(
        running, caplog: pytest.LogCaptureFixture) -> None:
    manager, root = running
    config = root / "models.config"
    a = {"name": "a", "path": root / "a"}
    write_config(config, a)
    poller = ModelConfigPoller(config, manager, 3600, [ModelConfig("a", root / "a")])
    assert poller.poll_once() is False  # unchanged
    write_config(config, a, {"name": "b", "path": versions(root / "b", 2)})
    assert poller.poll_once() is True
    assert manager.servable("b").version == 2
    config.write_text("model_config_list { config { name: 'a' nonsense: 1 } }")
    with caplog.at_level(logging.ERROR, logger="pipeline.serving.config_poll"):
        assert poller.poll_once() is False
        assert poller.poll_once() is False
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, errors  # logged once per distinct problem
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in errors[0]
    assert "keeping the config in force" in errors[0]
    assert manager.servable("a").version == 3 and manager.servable("b").version == 2


UNAVAILABLE = ("Request to assign label to version {v} of model a, which is not currently available "
               "for inference")


def test_a_label_on_a_version_that_is_not_available_is_refused_and_changes_nothing(running) -> None:
    """TF Serving's rule on reload (issue 24): only AVAILABLE versions may be labelled; the model
    keeps the config it had, policy included."""
    manager, root = running
    latest2 = VersionPolicy("latest", num_versions=2)
    with pytest.raises(ServingError) as refused:
        manager.apply_config([ModelConfig("a", root / "a", latest2, {"canary": 2}),
                              ModelConfig("b", versions(root / "b", 5))])
    assert (refused.value.code, refused.value.message) == ("FAILED_PRECONDITION", UNAVAILABLE.format(v=2))
    assert states(manager, "a") == {3: "AVAILABLE"}  # the policy change was not applied either
    with pytest.raises(ServingError, match="Unrecognized servable version label: canary"):
        manager.servable("a", label="canary")
    assert manager.servable("b").version == 5  # the other model's change applied


def test_a_label_in_a_reload_that_adds_its_model_is_checked_once_the_model_loaded(running) -> None:
    manager, root = running
    b = versions(root / "b", 5)
    manager.apply_config([ModelConfig("a", root / "a"), ModelConfig("b", b, labels={"stable": 5})])
    assert manager.servable("b", label="stable").version == 5
    with pytest.raises(ServingError, match="version 6 of model c, which is not currently available"):
        manager.apply_config([ModelConfig("a", root / "a"), ModelConfig("b", b, labels={"stable": 5}),
                              ModelConfig("c", versions(root / "c", 5), labels={"stable": 6})])
    assert manager.servable("c").version == 5  # added, without its label
    with pytest.raises(ServingError, match="Unrecognized servable version label: stable"):
        manager.servable("c", label="stable")


def test_with_the_flag_new_labels_may_name_unavailable_versions_but_none_may_move_there(
        tmp_path: Path) -> None:
    """`--allow_version_labels_for_unavailable_models`: a new or unchanged label may name a version
    that is not loaded; moving an existing label to such a version is still refused."""
    base = versions(tmp_path / "a", 1, 2, 3)
    manager = ServableManager([ModelConfig("a", base)], loader=Recorder(), poll_wait_seconds=3600,
                              allow_unavailable_labels=True)
    manager.start()
    try:
        manager.apply_config([ModelConfig("a", base, labels={"next": 9, "stable": 3})])
        with pytest.raises(ServingError, match=r"Servable not found for request: Specific\(a, 9\)"):
            manager.servable("a", label="next")
        with pytest.raises(ServingError, match=UNAVAILABLE.format(v=1)):
            manager.apply_config([ModelConfig("a", base, labels={"next": 9, "stable": 1})])
        assert manager.servable("a", label="stable").version == 3
    finally:
        manager.stop()


def test_at_start_up_labels_that_break_the_rule_are_not_applied(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    base = versions(tmp_path / "a", 1, 2, 3)
    manager = ServableManager([ModelConfig("a", base, labels={"old": 1})], loader=Recorder(),
                              poll_wait_seconds=3600)
    manager.start()
    try:
        with caplog.at_level(logging.ERROR):
            assert manager.enforce_label_rule() == [UNAVAILABLE.format(v=1)]
        assert UNAVAILABLE.format(v=1) in caplog.text
        with pytest.raises(ServingError, match="Unrecognized servable version label: old"):
            manager.servable("a", label="old")
    finally:
        manager.stop()


def test_a_logging_config_that_cannot_be_honoured_is_refused_and_everything_else_applies(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """As `--model_config_file` polling and gRPC's HandleReloadConfigRequest take it: the reload
    answers INVALID_ARGUMENT naming the refusal; the model is added and serves, without request
    logging; another model's logging_config is honoured."""
    from pipeline.serving.request_logs import RequestLogs

    root, logs = tmp_path, RequestLogs()
    manager = ServableManager([ModelConfig("a", versions(root / "a", 1, 2, 3))], loader=Recorder(),
                              poll_wait_seconds=3600, on_config=logs.apply)
    manager.start()
    blocker = root / "not-a-folder"
    blocker.write_text("")
    config = model_server_config_pb2.ModelServerConfig()
    for name, prefix in (("a", root / "logs" / "a"), ("b", blocker / "b")):
        entry = config.model_config_list.config.add(name=name, base_path=str(versions(root / name, 1)),
                                                    model_platform="tensorflow")
        entry.logging_config.log_collector_config.type = "file"
        entry.logging_config.log_collector_config.filename_prefix = str(prefix)
        entry.logging_config.sampling_config.sampling_rate = 1.0
    with caplog.at_level(logging.ERROR), pytest.raises(ServingError) as error:
        manager.apply_config(config)
    assert error.value.code == "INVALID_ARGUMENT"
    assert re.match(r"Model b: logging_config refused, the model is served without request logging: "
                    r"filename_prefix '.*' cannot be written", error.value.message)
    assert manager.servable("b").version == 1 and manager.servable("a").version == 3
    assert logs.logger("a") is not None and logs.logger("b") is None
    with pytest.raises(ServingError):  # the same refusal again (a config poll retries): logged once
        manager.apply_config(config)
    assert sum("Model b: logging_config refused" in r.getMessage() for r in caplog.records) == 1
    manager.stop()
    logs.close()
