"""The embedded server's models.config (pipeline.store.serving_config): every model folder, labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.store import serving_config as sc


def _versions(folder: Path, *numbers: int) -> Path:
    for n in numbers:
        (folder / str(n)).mkdir(parents=True)
    return folder


def test_the_server_config_lists_every_model_folder_and_tf_serving_parses_it(tmp_path):
    from pipeline.serving.model_config import parse_model_config_text

    models = tmp_path / "models"
    _versions(models / "linear_model", 1, 2)
    _versions(models / "other", 1)
    (models / "empty").mkdir()
    path = tmp_path / "run" / "models.config"
    written = sc.write_for_server(path, "linear_model", models / "linear_model")
    assert [m.name for m in written] == ["linear_model", "other"]
    parsed = parse_model_config_text(path.read_text())  # the server's own parser accepts it
    assert [(c.name, c.base_path) for c in parsed] == [("linear_model", (models / "linear_model").resolve()),
                                                        ("other", (models / "other").resolve())]
    assert str(parsed[0].policy) == "latest 2"


def test_labels_are_written_kept_across_restarts_and_removed(tmp_path):
    from pipeline.serving.model_config import parse_model_config_text

    base = _versions(tmp_path / "models" / "linear_model", 1, 2)
    path = tmp_path / "models.config"
    sc.write_for_server(path, "linear_model", base)
    sc.set_label(path, "linear_model", "stable", 1)
    sc.set_label(path, "linear_model", "canary", 2)
    assert sc.labels_of(path, "linear_model") == {"stable": 1, "canary": 2}
    assert parse_model_config_text(path.read_text())[0].labels == {"stable": 1, "canary": 2}
    sc.write_for_server(path, "linear_model", base)  # a restart keeps the labels
    assert sc.labels_of(path, "linear_model") == {"stable": 1, "canary": 2}
    sc.set_label(path, "linear_model", "canary", None)
    assert sc.labels_of(path, "linear_model") == {"stable": 1}


@pytest.mark.parametrize("label", ["", "3", "has space", "x" * 65, "-dash"])
def test_bad_labels_are_refused_with_the_rule(tmp_path, label):
    with pytest.raises(ValueError, match="start with a letter"):
        sc.set_label(tmp_path / "models.config", "linear_model", label, 1)


def test_a_new_model_is_added_to_a_running_servers_config(tmp_path):
    path = tmp_path / "models.config"
    assert not sc.ensure_model(path, "other", tmp_path / "other")  # no config: no embedded server
    sc.write_for_server(path, "linear_model", tmp_path / "linear_model")
    assert sc.ensure_model(path, "other", tmp_path / "other")
    assert not sc.ensure_model(path, "other", tmp_path / "other")
    assert [m.name for m in sc.read(path)] == ["linear_model", "other"]


def test_an_unreadable_config_is_named(tmp_path):
    path = tmp_path / "models.config"
    path.write_text("model_config_list { config { name: ")
    with pytest.raises(ValueError, match="models.config"):
        sc.read(path)
    assert sc.labels_of(path, "linear_model") == {}
