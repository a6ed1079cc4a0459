"""Where the model picker finds names: a models.config of any TF Serving, names typed earlier, the
server's listing, merged with their sources and the default model first."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard import model_sources as ms

TF_SERVING_CONFIG = """
# the file a tensorflow_model_server was started with
model_config_list {
  config {
    name: "half_plus_two"   # the test model
    base_path: "/models/half_plus_two"
    model_platform: "tensorflow"
    model_version_policy { specific { versions: 1 versions: 2 } }
    version_labels { key: "stable" value: 1 }
  }
  config { name: 'single_quoted' base_path: '/x' }
  config {
    name: "text#model"
    base_path: "/models/text"
  }
  config { name: "half_plus_two" base_path: "/again" }
}
"""


def test_every_model_name_of_a_tf_serving_config_in_file_order() -> None:
    assert ms.config_model_names(TF_SERVING_CONFIG) == ["half_plus_two", "single_quoted", "text#model"]


def test_a_commented_out_model_is_not_offered() -> None:
    text = 'model_config_list {\n  # config { name: "old" }\n  config { name: "new" }\n}\n'
    assert ms.config_model_names(text) == ["new"]


def test_an_unreadable_config_says_why(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        ms.read_config_names(tmp_path / "missing.config")
    with pytest.raises(ValueError, match="is a folder"):
        ms.read_config_names(tmp_path)
    (tmp_path / "empty.config").write_text("model_config_list {}\n")
    with pytest.raises(ValueError, match="names no model"):
        ms.read_config_names(tmp_path / "empty.config")
    assert ms.config_model_names_or_none(tmp_path / "missing.config") == []
    (tmp_path / "typo.config").write_text('model_config_list { config { nme: "x" } }\n')
    with pytest.raises(ValueError, match="is not a models.config TF Serving reads"):
        ms.read_config_names(tmp_path / "typo.config")
    assert ms.config_model_names_or_none(tmp_path / "typo.config") == []


def test_typed_names_are_remembered_newest_first(tmp_path: Path) -> None:
    assert ms.remembered(tmp_path) == []
    ms.remember(tmp_path, "a")
    ms.remember(tmp_path, "b")
    assert ms.remember(tmp_path, "a") == ["a", "b"]
    assert ms.remembered(tmp_path) == ["a", "b"]
    assert ms.forget(tmp_path, "a") == ["b"]
    (tmp_path / ms.REMEMBERED_FILE).write_text("{not json")
    assert ms.remembered(tmp_path) == []


def test_names_are_merged_with_their_sources_default_first() -> None:
    found = ms.gather(default="linear_model", current="linked", server=["zeta", "half_plus_two"],
                      embedded=["linear_model", "half_plus_two"], config=["Alpha"], typed=["../evil", "mine"])
    assert found.names == ["linear_model", "Alpha", "half_plus_two", "linked", "mine", "zeta"]
    assert found.origin("half_plus_two") == "listed by the server; in the embedded server's models.config"
    assert found.origin("linked") == ""
    assert found.origin("mine") == "typed here before"
    assert found.origin("Alpha") == "in your models.config"
