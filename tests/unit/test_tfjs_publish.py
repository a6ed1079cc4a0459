"""Writing, publishing and zipping a TF.js model: all-or-nothing folders, URLs, the download zip.

Uses a hand-written graph model (no TensorFlow): these are the file operations the dashboard's
Deploy page calls.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from pipeline.formats.errors import FormatError
from pipeline.formats.graph_model import GraphModel
from pipeline.formats.tfjs import (
    model_files,
    prune_published,
    publish_for_browser,
    published_key,
    write_graph_model,
    zip_tfjs,
)
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
    published = tmp_path / "dashboard" / "static" / "models"
    url = publish_for_browser(version, published)
    key = published_key(version)
    assert url == f"app/static/models/{key}/model.json"
    assert (published / key / "group1-shard2of2.bin").read_bytes() == b"v1"
    assert (published / key / "model.json").read_bytes() == (version / "tfjs" / "model.json").read_bytes()
    assert publish_for_browser(version, published, url_prefix="/base/app/static/models/") == \
        f"/base/app/static/models/{key}/model.json"


def test_two_model_folders_with_the_same_name_and_version_get_two_copies(tmp_path):
    first, second = _version(tmp_path / "a", "first"), _version(tmp_path / "b", "second")
    published = tmp_path / "published"
    assert publish_for_browser(first, published) != publish_for_browser(second, published)
    assert sorted((published / published_key(v) / "group1-shard2of2.bin").read_bytes()
                  for v in (first, second)) == [b"first", b"second"]


def test_publishing_again_serves_the_newer_export_and_reuses_an_unchanged_copy(tmp_path):
    version = _version(tmp_path, "first")
    published = tmp_path / "published"
    publish_for_browser(version, published)
    shard = published / published_key(version) / "group1-shard2of2.bin"
    copied = shard.stat().st_ino
    publish_for_browser(version, published)
    assert shard.stat().st_ino == copied  # nothing changed: nothing copied again
    write_graph_model(_model("second"), version / "tfjs")
    publish_for_browser(version, published)
    assert shard.read_bytes() == b"second"


def test_copies_of_versions_that_are_gone_or_changed_are_pruned_when_publishing(tmp_path):
    published = tmp_path / "published"
    names = ("gone", "changed", "kept", "current")
    gone, changed, kept, current = (_version(tmp_path / name) for name in names)
    for version in (gone, changed, kept):
        publish_for_browser(version, published)
    shutil.rmtree(gone)
    write_graph_model(_model("re-exported"), changed / "tfjs")
    (published / "0ld1ay0ut" / "models" / "linear_model" / "3").mkdir(parents=True)  # an old copy, no record
    running = published / f".{published_key(current)}.tmp-{os.getpid()}-busy"  # a publish in progress
    running.mkdir()
    publish_for_browser(current, published)
    assert sorted(p.name for p in published.iterdir() if not p.name.startswith(".")) == sorted(
        [published_key(kept), published_key(current)])
    assert running.is_dir()


def test_the_number_of_copies_is_bounded_and_the_least_recently_published_go_first(tmp_path):
    published = tmp_path / "published"
    versions = [_version(tmp_path / str(i)) for i in range(6)]
    for version in versions[:4]:
        publish_for_browser(version, published, keep=3)
    assert sorted(p.name for p in published.iterdir()) == sorted(published_key(v) for v in versions[1:4])
    publish_for_browser(versions[1], published, keep=3)  # published again: the newest now
    publish_for_browser(versions[4], published, keep=3)
    publish_for_browser(versions[5], published, keep=3)
    assert sorted(p.name for p in published.iterdir()) == sorted(
        published_key(v) for v in (versions[1], versions[4], versions[5]))
    assert prune_published(published, keep=1) == sorted(published_key(v) for v in (versions[1], versions[4]))


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
