"""Every new version gets its `.tflite` and TF.js formats; a failed conversion is a note, never a
failed run or a broken version (pipeline.runs.conversions, called by runs.job and runs.export)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.formats.errors import FormatError
from pipeline.runs import conversions
from pipeline.runs.export import export_run, model_from_record
from pipeline.runs.job import run_training
from pipeline.store import records, versions
from pipeline.store.run_record import RunRecord, RunStatus, Weights
from pipeline.training.fit import TrainConfig

SMALL = TrainConfig(samples=200, epochs=40, batch_size=16)


def test_a_new_runs_version_has_its_tflite_and_tfjs_files(tmp_path: Path) -> None:
    record = run_training(SMALL, tmp_path)
    folder = tmp_path / str(record.version)
    assert (folder / "model.tflite").read_bytes()[4:8] == b"TFL3"
    graph = json.loads((folder / "tfjs" / "model.json").read_text())
    assert graph["format"] == "graph-model" and graph["weightsManifest"]
    assert (folder / "saved_model.pb").is_file()  # the SavedModel is still there, beside them
    size = (folder / "model.tflite").stat().st_size
    assert record.formats["tflite"] == {"path": "model.tflite", "bytes": size}
    assert record.formats["tfjs"]["path"] == "tfjs/model.json"
    assert records.load_run(tmp_path, record.id).formats == record.formats
    info = versions.list_versions(tmp_path)[0]
    assert info.formats == ("tflite", "tfjs") and info.run_record.formats == record.formats
    assert record.timings["formats_s"] > 0 and record.timings["export_s"] > 0


def test_a_failed_conversion_is_recorded_and_the_version_stays(tmp_path: Path, monkeypatch) -> None:
    def refuse(path):
        return {"tflite": FormatError("TFLite export failed: no"),
                "tfjs": FormatError("TF.js export of 1 refused: unsupported op 'Foo'")}

    monkeypatch.setattr("pipeline.formats.export_all", refuse)
    record = run_training(SMALL, tmp_path)
    assert record.status == "succeeded" and record.version == 1
    assert record.formats["tfjs"] == {"error": "TF.js export of 1 refused: unsupported op 'Foo'"}
    info = versions.list_versions(tmp_path)[0]
    assert (info.path / "saved_model.pb").is_file() and info.formats == ()
    assert info.run_record.formats["tflite"]["error"] == "TFLite export failed: no"
    assert conversions.format_summary(info.formats, info.run_record.formats) == \
        "SavedModel, TFLite failed, TF.js failed"


def test_a_converter_that_crashes_does_not_fail_the_run(tmp_path: Path, monkeypatch) -> None:
    def crash(path):
        raise ImportError("ai_edge_litert is missing")

    monkeypatch.setattr("pipeline.formats.export_all", crash)
    record = run_training(SMALL, tmp_path)
    assert record.status == "succeeded" and versions.list_versions(tmp_path)[0].version == 1
    assert "ai_edge_litert is missing" in record.formats["all"]["error"]


def test_exporting_a_recorded_run_later_also_converts_it(tmp_path: Path) -> None:
    record = run_training(SMALL, tmp_path, export=False)
    assert not versions.list_versions(tmp_path)
    info = export_run(tmp_path, record.id)
    assert versions.list_versions(tmp_path)[0].formats == ("tflite", "tfjs")
    saved = records.load_run(tmp_path, record.id)
    assert saved.version == info.version and saved.formats["tflite"]["path"] == "model.tflite"


def test_update_run_record_merges_and_keeps_the_rest(tmp_path: Path) -> None:
    record = RunRecord("r1", RunStatus.SUCCEEDED, learned=Weights((2.0, -1.0), 3.0), extra={"note": "kept"})
    info = versions.export_version(model_from_record(record), tmp_path, record)
    versions.update_run_record(info.path, formats={"tfjs": {"error": "x"}})
    stored = versions.read_run_record(info.path)
    assert stored.extra["note"] == "kept" and stored.version == 1 and stored.learned == record.learned
    assert stored.formats == {"tfjs": {"error": "x"}}
    assert not [p for p in (info.path / "assets.extra").iterdir() if p.name.startswith(".")]


def test_format_summary_prefers_the_files_on_disk() -> None:
    failed = {"tflite": {"path": "model.tflite"}, "tfjs": {"error": "unsupported op 'Foo'"}}
    assert conversions.format_summary(("tflite",), failed) == "SavedModel, TFLite, TF.js failed"
    # converted later (Deploy page, CLI): the files win over the recorded failure
    assert conversions.format_summary(("tflite", "tfjs"), failed) == "SavedModel, TFLite, TF.js"
    assert conversions.format_summary((), None) == "SavedModel"  # made before formats existed
    assert conversions.format_errors(("tflite",), failed) == {"TF.js": "unsupported op 'Foo'"}
    assert conversions.format_errors(("tflite", "tfjs"), failed) == {}
