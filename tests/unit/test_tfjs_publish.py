"""Writing, publishing and zipping a TF.js model: all-or-nothing folders, URLs, the download zip.

Uses a hand-written graph model (no TensorFlow): these are the file operations the dashboard's
Deploy page calls.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from pipeline.formats.errors import FormatError
from pipeline.formats.graph_model import GraphModel
from pipeline.formats.tfjs import model_files, publish_for_browser, write_graph_model, zip_tfjs
from pipeline.state import staged_dir


def _model(tag: str) -> GraphModel:
    doc = {"format": "graph-model", "modelTopology": {"node": []}, "tag": tag,
           "weightsManifest": [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"], "weights": []}]}
    return GraphModel(doc, {"group1-shard1of2.bin": b"\x01\x02", "group1-shard2of2.bin": tag.encode()})


def _version(tmp_path: Path, tag: str = "v1") -> Path:
    version = tmp_path / "models" / "linear_model" / "3"
    version.mkdir(parents=True)
    (version / "saved_model.pb").write_bytes(b"pretend SavedModel")
    write_graph_model(_model(tag), version / "tfjs")
    return version


def test_written_model_has_model_json_and_every_shard(tmp_path):
    version = _version(tmp_path)
    assert sorted(p.name for p in (version / "tfjs").iterdir()) == [
        "group1-shard1of2.bin", "group1-shard2of2.bin", "model.json"]
    assert json.loads((version / "tfjs" / "model.json").read_text())["format"] == "graph-model"
    names = [p.name for p in model_files(version)]
    assert names == ["model.json", "group1-shard1of2.bin", "group1-shard2of2.bin"]


def test_rewriting_replaces_the_folder_whole_and_leaves_no_temporaries(tmp_path):
    version = _version(tmp_path, "old")
    write_graph_model(_model("new"), version / "tfjs")
    assert (version / "tfjs" / "group1-shard2of2.bin").read_bytes() == b"new"
    assert sorted(p.name for p in version.iterdir()) == ["saved_model.pb", "tfjs"]


def test_a_failure_while_writing_keeps_the_previous_model_and_the_savedmodel(tmp_path):
    version = _version(tmp_path, "old")
    with pytest.raises(RuntimeError), staged_dir(version / "tfjs") as staging:
        (staging / "model.json").write_text("half")
        raise RuntimeError("conversion died")
    assert json.loads((version / "tfjs" / "model.json").read_text())["tag"] == "old"
    assert (version / "saved_model.pb").read_bytes() == b"pretend SavedModel"
    assert sorted(p.name for p in version.iterdir()) == ["saved_model.pb", "tfjs"]


def test_leftovers_of_a_dead_export_are_removed_but_a_running_one_is_kept(tmp_path):
    version = _version(tmp_path)
    dead = version / ".tfjs.tmp-crashed"
    running = version / f".tfjs.tmp-{os.getpid()}-busy"
    dead.mkdir()
    running.mkdir()
    write_graph_model(_model("again"), version / "tfjs")
    assert not dead.exists()
    assert running.exists()


def test_publish_copies_the_model_to_static_and_returns_its_app_url(tmp_path):
    version = _version(tmp_path)
    static = tmp_path / "dashboard" / "static"
    url = publish_for_browser(version, static)
    assert url == "app/static/models/linear_model/3/model.json"
    published = static / "models" / "linear_model" / "3"
    assert (published / "group1-shard2of2.bin").read_bytes() == b"v1"
    assert (published / "model.json").read_bytes() == (version / "tfjs" / "model.json").read_bytes()


def test_publishing_again_serves_the_newer_export(tmp_path):
    version = _version(tmp_path, "first")
    static = tmp_path / "static"
    publish_for_browser(version, static)
    write_graph_model(_model("second"), version / "tfjs")
    publish_for_browser(version, static, url_prefix="/base/app/static/")
    assert (static / "models" / "linear_model" / "3" / "group1-shard2of2.bin").read_bytes() == b"second"


def test_zip_holds_model_json_and_shards_in_one_named_folder(tmp_path):
    version = _version(tmp_path)
    with zipfile.ZipFile(io.BytesIO(zip_tfjs(version))) as archive:
        assert sorted(archive.namelist()) == [
            "linear_model-3-tfjs/group1-shard1of2.bin", "linear_model-3-tfjs/group1-shard2of2.bin",
            "linear_model-3-tfjs/model.json"]
        assert archive.read("linear_model-3-tfjs/group1-shard2of2.bin") == b"v1"


def test_a_version_without_tfjs_export_says_how_to_make_one(tmp_path):
    version = tmp_path / "linear_model" / "4"
    version.mkdir(parents=True)
    with pytest.raises(FormatError, match=r"has no TF.js model yet.*python -m pipeline.formats"):
        publish_for_browser(version, tmp_path / "static")
    with pytest.raises(FormatError, match="has no TF.js model yet"):
        zip_tfjs(version)


def test_a_missing_shard_is_named(tmp_path):
    version = _version(tmp_path)
    (version / "tfjs" / "group1-shard2of2.bin").unlink()
    with pytest.raises(FormatError, match="missing weight shard.*group1-shard2of2.bin"):
        zip_tfjs(version)
