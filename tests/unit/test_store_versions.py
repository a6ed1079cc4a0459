"""Versioned export: TF Serving's layout, numbering, atomicity, signatures, deletion."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from pipeline import model_dir
from pipeline.store import versions as registry
from pipeline.store.run_record import RunRecord, RunStatus
from pipeline.training.fit import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained():
    return train(TrainConfig(samples=800, epochs=60))


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    base = tmp_path_factory.mktemp("models") / "linear_model"
    record = trained.record_into(RunRecord("20260101T000000-first1", extra={"note": "first"}))
    info = registry.export_version(trained.model, base, record)
    return base, info


def test_first_export_is_version_1_with_the_tf_serving_layout(exported):
    base, info = exported
    assert info.version == 1 and info.path == base / "1"
    assert (info.path / "saved_model.pb").is_file()
    assert (info.path / "variables").is_dir()
    record = json.loads((info.path / "assets.extra" / "run.json").read_text())
    assert record["version"] == 1 and record["note"] == "first" and record["created"] == info.created


def test_exported_version_loads_and_predicts_the_tutorial_rows(exported, trained):
    import tensorflow as tf

    base, info = exported
    fn = tf.saved_model.load(str(info.path)).signatures["serving_default"]
    ((name, spec),) = fn.structured_input_signature[1].items()
    assert name == "inputs" and spec.dtype == tf.float32 and spec.shape.as_list() == [None, 2]
    out = fn(inputs=tf.constant([[1.0, 2.0], [5.0, 7.0]]))
    (pred,) = out.values()
    expected = np.array([[1, 2], [5, 7]]) @ np.array(trained.ols_w) + trained.ols_b
    np.testing.assert_allclose(pred.numpy()[:, 0], expected, atol=0.1)
    np.testing.assert_allclose(pred.numpy()[:, 0], [3.0, 6.0], atol=0.3)


def test_read_signature_matches_saved_model_cli(exported):
    _, info = exported
    sig = model_dir.read_signature(info.path)
    assert sig.inputs["inputs"].dtype == "DT_FLOAT" and sig.inputs["inputs"].shape == (-1, 2)
    assert sig.outputs["output_0"].shape == (-1, 1)
    assert sig.method_name == "tensorflow/serving/predict"
    cli = subprocess.run(
        [str(Path(sys.executable).parent / "saved_model_cli"), "show", "--dir", str(info.path), "--all"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert cli.returncode == 0, cli.stderr
    assert sig.cli_text() in cli.stdout


def test_read_signature_of_a_missing_signature_names_the_choices(exported):
    with pytest.raises(ValueError, match="serving_default"):
        model_dir.read_signature(exported[1].path, "nope")


def test_numbering_is_highest_plus_one_and_list_versions_reads_records(trained, tmp_path):
    base = tmp_path / "m"
    (base / "7").mkdir(parents=True)
    (base / "v9").mkdir()  # not a version: TF Serving ignores it, and so do we
    (base / "runs").mkdir()
    info = registry.export_version(trained.model, base, RunRecord("r8", RunStatus.SUCCEEDED))
    assert info.version == 8
    versions = registry.list_versions(base)
    assert [v.version for v in versions] == [7, 8]
    assert versions[1].run_record.id == "r8" and versions[1].run_record.version == 8
    assert versions[1].size_bytes > 1000
    assert versions[0].run_record is None


def test_failed_export_leaves_no_numeric_directory(tmp_path):
    class Broken:
        def export(self, path, **kwargs):
            Path(path).mkdir()
            (Path(path) / "saved_model.pb").write_bytes(b"half")
            raise RuntimeError("disk full")

    base = tmp_path / "m"
    with pytest.raises(RuntimeError, match="disk full"):
        registry.export_version(Broken(), base)
    assert list(base.iterdir()) == []


def test_killed_export_leaves_no_version_and_next_export_cleans_up(trained, tmp_path):
    """SIGKILL while the SavedModel is written but not yet renamed into place."""
    base = tmp_path / "m"
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from pipeline.store import versions as registry
        from pipeline.training.fit import TrainConfig, train
        model = train(TrainConfig(samples=50, epochs=1)).model
        def stall(root):
            print("WRITTEN", flush=True)
            time.sleep(600)
        registry.state.fsync_tree = stall  # stall between writing the export and renaming it
        registry.export_version(model, {str(base)!r})
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        assert proc.stdout.readline().strip() == "WRITTEN"
        leftovers = [p for p in base.iterdir() if p.name.startswith(".tmp-")]
        assert len(leftovers) == 1 and registry.list_versions(base) == []
        assert (leftovers[0] / "saved_model.pb").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert registry.list_versions(base) == []
    info = registry.export_version(trained.model, base)
    assert info.version == 1
    assert not [p.name for p in base.iterdir() if p.name.startswith(".tmp-")]


def test_delete_version_removes_it_and_numbering_continues(trained, tmp_path):
    base = tmp_path / "m"
    for _ in range(2):
        registry.export_version(trained.model, base)
    registry.delete_version(base, 2)
    assert [v.version for v in registry.list_versions(base)] == [1]
    # the number of a deleted version is never given out again (clients cache by version)
    assert registry.export_version(trained.model, base).version == 3
    registry.delete_version(base, 3)
    registry.delete_version(base, 1)
    assert registry.next_version_number(base) == 4
    (base / "7").mkdir()  # a version copied in by hand counts too
    assert registry.export_version(trained.model, base).version == 8
    with pytest.raises(ValueError, match="no version 5"):
        registry.delete_version(base, 5)


@pytest.mark.parametrize("name", ["linear_model", "m-1.2", "A_b"])
def test_valid_model_names(name):
    assert registry.validate_model_name(name) == name


@pytest.mark.parametrize("name", ["", "..", ".", "a/b", "../etc", "a..b", "x" * 129, "sp ace", "a\\b", "ü"])
def test_invalid_model_names_are_rejected(name):
    with pytest.raises(ValueError, match="invalid model name"):
        registry.validate_model_name(name)


def test_base_path_that_is_a_file_is_rejected_before_writing(trained, tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        registry.export_version(trained.model, f)
    assert f.read_text() == "x"


def test_unwritable_base_path_is_rejected(trained):
    with pytest.raises(ValueError, match="/proc/linear_model"):
        registry.export_version(trained.model, "/proc/linear_model")


def test_version_folders_are_read_like_tf_serving(trained, tmp_path):
    """The store lists exactly what the server would serve: `model_dir.parse_version`'s rule."""
    assert model_dir.parse_version("00000123") == 123
    assert [model_dir.parse_version(n) for n in ("v1", "0.1", "temp-123", "1_tmp", ".tmp-1-x")] == [None] * 5
    base = tmp_path / "m"
    registry.export_version(trained.model, base)
    (base / str(2**63 - 1)).mkdir()  # INT64_MAX: still a version for TF Serving
    (base / str(2**63)).mkdir()  # beyond int64: not a version
    assert [v.version for v in registry.list_versions(base)] == [1, 2**63 - 1]
