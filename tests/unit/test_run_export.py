"""Exporting a recorded run later (pipeline.runs.export) from several processes at once: one version.

The dashboard exports in a new process per click, so two clicks (or two tabs) export one run from
two processes; an in-process lock cannot serialise them. Both exporters below are started, warmed
up (TensorFlow imported, a model built) and then released together, so both read the record before
either writes it back unless the export is locked across processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pipeline.runs.job import run_training
from pipeline.store import records, versions
from pipeline.training.fit import TrainConfig

ROOT = Path(__file__).resolve().parents[2]

EXPORTER = """
import json, sys
from pipeline.runs.export import export_run, model_from_record
from pipeline.store import records
base, run_id = sys.argv[1], sys.argv[2]
model_from_record(records.load_run(base, run_id))  # warm up: TensorFlow imported, a model built
print("READY", flush=True)
sys.stdin.readline()
try:
    print(json.dumps({"version": export_run(base, run_id).version}), flush=True)
except ValueError as error:
    print(json.dumps({"error": str(error)}), flush=True)
"""


def test_two_concurrent_exports_of_one_run_make_one_version(tmp_path: Path) -> None:
    base = tmp_path / "linear_model"
    record = run_training(TrainConfig(samples=200, epochs=40, batch_size=16), base, export=False)
    exporters = [subprocess.Popen([sys.executable, "-c", EXPORTER, str(base), record.id], cwd=ROOT,
                                  text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                 for _ in range(2)]
    try:
        assert [p.stdout.readline().strip() for p in exporters] == ["READY", "READY"]
        for p in exporters:  # release both at once
            p.stdin.write("go\n")
            p.stdin.flush()
        answers = [json.loads(p.stdout.readline()) for p in exporters]
    finally:
        for p in exporters:
            p.kill()
            p.wait(30)
    made = [a["version"] for a in answers if "version" in a]
    refused = [a["error"] for a in answers if "error" in a]
    assert made == [1], answers
    assert len(refused) == 1 and "already exported as version 1" in refused[0]
    assert [v.version for v in versions.list_versions(base)] == [1]
    assert records.load_run(base, record.id).version == 1
