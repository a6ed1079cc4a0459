"""``python -m pipeline.train``: one clear message and exit 2 for bad input, nothing written."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "pipeline.train", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_trains_prints_the_weights_table_and_exports(tmp_path):
    base = tmp_path / "linear_model"
    r = run_cli("--samples", "400", "--epochs", "40", "--base-path", str(base), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "learned" in r.stdout and "OLS" in r.stdout and "w2" in r.stdout
    assert f"exported version 1: {base / '1'}" in r.stdout
    assert (base / "1" / "saved_model.pb").is_file()
    assert len(list((base / "runs").glob("*.json"))) == 1


def test_true_weights_of_10_000_are_learned_and_printed_in_the_datas_units(tmp_path):
    r = run_cli("--true-w", "10000,-10000", "--true-b", "-10000", "--no-export", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "quality gate" not in r.stderr
    table = {line.split()[0]: [float(v) for v in line.split()[1:]] for line in r.stdout.splitlines()
             if line.split()[:1] in (["w1"], ["w2"], ["b"])}
    for name, true in (("w1", 10_000.0), ("w2", -10_000.0), ("b", -10_000.0)):
        learned, shown_true, ols, _ = table[name]
        assert shown_true == true and learned == pytest.approx(ols, abs=5.0)
        assert learned == pytest.approx(true, rel=1e-3)


def test_help_documents_every_flag():
    r = run_cli("--help")
    assert r.returncode == 0
    for flag in (
        "--samples",
        "--true-w",
        "--true-b",
        "--noise",
        "--seed",
        "--epochs",
        "--batch-size",
        "--optimizer",
        "--learning-rate",
        "--lr-schedule",
        "--base-path",
        "--no-export",
        "--export-anyway",
    ):
        assert flag in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--samples", "1"], "samples must be between 2 and 10,000,000, got 1"),
        (["--samples", "10000001"], "got 10,000,001"),
        (["--noise", "nan"], "noise must be a finite number >= 0, got nan"),
        (["--noise", "-1"], "got -1.0"),
        (["--epochs", "0"], "epochs must be"),
        (["--optimizer", "adamax2"], "unknown optimizer 'adamax2'"),
        (["--true-w", "1,x"], "expected comma-separated numbers"),
    ],
)
def test_bad_values_exit_2_with_one_message_and_write_nothing(tmp_path, args, message):
    base = tmp_path / "linear_model"
    r = run_cli(*args, "--base-path", str(base))
    assert r.returncode == 2
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    assert not base.exists()


def test_base_path_that_is_a_file_exits_2(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep")
    r = run_cli("--base-path", str(f))
    assert r.returncode == 2 and "is a file" in r.stderr
    assert f.read_text() == "keep"


def test_unwritable_base_path_exits_2():
    r = run_cli("--base-path", "/proc/linear_model")
    assert r.returncode == 2 and "not writable" in r.stderr


def test_a_diverged_run_exits_1_and_exports_nothing(tmp_path):
    base = tmp_path / "linear_model"
    r = run_cli("--optimizer", "sgd", "--learning-rate", "10", "--epochs", "5", "--base-path", str(base),
                "--quiet")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "(failed)" in r.stdout and "FAILED: Training diverged" in r.stderr
    assert "succeeded" not in r.stdout and "exported version" not in r.stdout
    assert not [p for p in base.iterdir() if p.name.isdigit()]


def test_a_warned_run_prints_the_warning_and_exports_only_with_export_anyway(tmp_path):
    base = tmp_path / "linear_model"
    r = run_cli("--epochs", "1", "--base-path", str(base), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "WARNING (quality gate): Far from the least-squares optimum" in r.stderr
    assert "not exported" in r.stderr and "exported version" not in r.stdout
    assert not [p for p in base.iterdir() if p.name.isdigit()]
    forced = run_cli("--epochs", "1", "--base-path", str(base), "--quiet", "--export-anyway")
    assert forced.returncode == 0 and f"exported version 1: {base / '1'}" in forced.stdout
