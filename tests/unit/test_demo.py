"""``pipeline.demo``: seeding an empty folder gives versions and a history with every end state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.demo import DEMO_FAILURE, main, seed_demo, version_recipes
from pipeline.store import records as runs
from pipeline.store import versions as registry

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> tuple[Path, object, list[str]]:
    base = tmp_path_factory.mktemp("demo") / "linear_model"
    said: list[str] = []
    return base, seed_demo(base, versions=3, say=said.append), said


def test_seeding_exports_three_servable_versions_that_differ(seeded):
    base, result, _ = seeded
    versions = registry.list_versions(base)
    assert [v.version for v in versions] == [1, 2, 3] == result.versions
    samples = [v.run_record.config["samples"] for v in versions]
    assert samples == [100, 800, 5000]
    for v in versions:
        assert (v.path / "saved_model.pb").is_file()
        assert v.run_record.status == "succeeded"
    # more data, less noise -> closer to the truth: the comparison a demo should show
    errors = [v.run_record.errors.vs_true for v in versions]
    assert errors[2] < errors[1] < errors[0]
    assert errors[2] < 0.05


def test_seeding_records_a_cancelled_and_a_failed_run_too(seeded):
    base, result, _ = seeded
    records = runs.list_runs(base)
    assert sorted(r.status for r in records) == ["cancelled", "failed"] + ["succeeded"] * 3
    assert result.statuses == ["succeeded", "succeeded", "succeeded", "cancelled", "failed"]
    cancelled = next(r for r in records if r.status == "cancelled")
    assert len(cancelled.history) == 3 and cancelled.version is None
    failed = next(r for r in records if r.status == "failed")
    assert DEMO_FAILURE in failed.error and failed.version is None


def test_seeding_says_what_it_made(seeded):
    _, _, said = seeded
    assert said[0].startswith("version 1: few rows") and "100 samples" in said[0]
    assert "cancelled after 3 epochs" in said[3]
    assert "failed" in said[4]


def test_seeding_again_adds_versions_after_the_existing_ones(seeded, tmp_path):
    base = tmp_path / "linear_model"
    seed_demo(base, versions=1)
    again = seed_demo(base, versions=1)
    assert again.versions == [2]
    assert [v.version for v in registry.list_versions(base)] == [1, 2]


def test_more_versions_than_recipes_use_new_seeds():
    recipes = version_recipes(5)
    assert len(recipes) == 5
    assert recipes[3][1].samples == recipes[0][1].samples and recipes[3][1].seed != recipes[0][1].seed
    assert "seed" in recipes[3][0]


@pytest.mark.parametrize("versions", [0, 11, True])
def test_bad_version_counts_are_refused_before_any_work(tmp_path, versions):
    with pytest.raises(ValueError, match="versions must be a whole number from 1 to 10"):
        seed_demo(tmp_path / "m", versions=versions)
    assert not (tmp_path / "m").exists()


def test_cli_rejects_a_base_path_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SystemExit) as exit_info:
        main(["--base-path", str(target)])
    assert exit_info.value.code == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_cli_prints_each_run_and_a_summary(tmp_path):
    base = tmp_path / "linear_model"
    command = [sys.executable, "-m", "pipeline.demo", "--base-path", str(base), "--versions", "1"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[1].startswith("version 1: few rows, short run")
    assert lines[-1].startswith("made 1 version and 3 run records in")
