"""`python -m pipeline.traffic show|replay|to-warmup`: what a person or a CI job sees, exit statuses,
damage said on stderr, and no TensorFlow import. The REST client is faked at its boundary
(`ServingClient.predict_body`); tests/server/test_traffic_replay.py replays on a real server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline.client.errors import ClientError
from pipeline.client.rest import PredictResult, ServingClient
from pipeline.serving import log_files
from pipeline.serving.log_files import Transport
from pipeline.traffic.__main__ import main
from pipeline.traffic.logs import read_logs
from tests.support.no_tensorflow import SEEN, run_watched
from tests.support.traffic_logs import Call, write_traffic
from tests.unit.test_warmup_file import version_with_signatures


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    prefix = tmp_path / "traffic" / "m" / "requests"
    write_traffic(prefix, [Call([1.0], [3.0]), Call([4.0], [6.0], transport=Transport.GRPC),
                           Call([9.0], None, status="INVALID_ARGUMENT", message="bad x"),
                           Call([10.0], [12.0], latency_ms=7.25)])
    return prefix


def test_show_lists_requests_newest_first_with_their_facts(logs: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["show", str(logs)]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["TIME", "(UTC)", "MODEL"]
    assert "x: [[10.0]] -> y: [[12.0]]" in lines[1] and "7.2 ms" in lines[1] and "REST" in lines[1]
    assert "INVALID_ARGUMENT" in lines[2] and "x: [[9.0]] -> bad x" in lines[2]
    assert len(lines) == 5
    assert err.strip() == "read 1 file, 4 logged requests"


def test_show_filters_and_json(logs: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["show", str(logs.parent), "--transport", "gRPC", "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out)
    assert item["transport"] == "gRPC" and item["prediction_log"]["predict_log"]["request"]["inputs"]["x"]
    assert main(["show", str(logs), "--status", "failed", "--since", "2023-11-14T22:13:21"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_a_damaged_file_is_read_up_to_the_damage_and_said(logs: Path, capsys: pytest.CaptureFixture) -> None:
    [file] = log_files.log_files(str(logs))
    file.write_bytes(file.read_bytes()[:-5])
    assert main(["show", str(logs)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 4  # the cut-short last request is not shown
    assert "3 logged requests; 1 file(s) still being written" in err and "the last record is cut short" in err
    os.utime(file, (1, 1))  # an old file cut short is damage, not a writer at work
    assert main(["show", str(logs)]) == 0
    err = capsys.readouterr().err
    assert "read 1 file, 3 logged requests; 143 bytes unread after damage in 1 file(s)" in err


def test_no_logs_and_bad_options_exit_2(tmp_path: Path, logs: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["show", str(tmp_path / "none")]) == 2
    assert "no request log files at" in capsys.readouterr().err
    assert main(["show", str(logs), "--since", "yesterday"]) == 2
    assert "not a time: 'yesterday'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["replay", str(logs), "--a", "3x", "--b", "2"])
    assert stop.value.code == 2


def fake_server(monkeypatch: pytest.MonkeyPatch, answers: dict) -> list:
    """`predict_body` answers `answers[version](x)`; a missing version is a 404."""
    sent = []

    def predict_body(client, model, body, version=None, label=None):
        sent.append((client.base_url, model, version, label, body))
        if version not in answers:
            raise ClientError(f"Servable not found for request: Specific({model}, {version})", url="",
                              status_code=404)
        x = body["inputs"]["x"]
        return PredictResult(url="", request=body, status_code=200, latency_s=0.001,
                             response={"outputs": [[answers[version](row[0])] for row in x]})

    monkeypatch.setattr(ServingClient, "predict_body", predict_body)
    return sent


def test_replay_prints_the_differences_and_exits_1_when_versions_disagree(
        logs: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = fake_server(monkeypatch, {1: lambda x: x + 2, 2: lambda x: 2 * x - 2})
    code = main(["replay", str(logs), "--a", "1", "--b", "version:2", "--rest", "http://127.0.0.1:9",
                 "--status", "OK"])
    out = capsys.readouterr().out
    assert code == 1
    assert "replayed 3 request(s) over REST: A = version 1, B = version 2" in out
    assert "agreeing within 1e-06: 1 of 3 (33.3%)" in out and "largest difference: 6" in out
    rows = out.split("DIFFERENCE")[1].splitlines()[1:]
    assert rows[0].startswith("6 ") and rows[1].startswith("3 ")
    assert sent[0][:4] == ("http://127.0.0.1:9", "m", 1, None)
    assert sent[0][4] == {"signature_name": "serving_default", "inputs": {"x": [[10.0]]}}


def test_replay_of_agreeing_versions_exits_0_with_json(logs: Path, capsys: pytest.CaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake_server(monkeypatch, {None: lambda x: x + 2, 5: lambda x: x + 2.0000001})
    code = main(["replay", str(logs), "--a", "latest", "--b", "5", "--status", "ok", "--json",
                 "--tolerance", "1e-3", "--as-model", "other"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (report["requests"], report["agreeing"], report["a"], report["b"]) == (3, 3, "latest", "version 5")
    assert report["largest_difference"] < 1e-3


def test_to_warmup_writes_the_ok_requests_into_the_version(logs: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    version = version_with_signatures(tmp_path / "models" / "m" / "4", {"serving_default": ["x"]})
    assert main(["to-warmup", str(logs), "--version-dir", str(version), "--limit", "3"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"wrote 2 request(s) to {version / 'assets.extra' / 'tf_serving_warmup_requests'}"
    assert "left out" in err and "INVALID_ARGUMENT" in err
    written = read_logs([version / "assets.extra" / "tf_serving_warmup_requests"])
    assert sorted(e.inputs for e in written) == ["x: [[10.0]]", "x: [[4.0]]"]


def test_to_warmup_json_and_tfrecord_files(logs: Path, tmp_path: Path) -> None:
    assert main(["to-warmup", str(logs), "--out", str(tmp_path / "r.json"), "--format", "json"]) == 0
    assert len(json.loads((tmp_path / "r.json").read_text())) == 4
    assert main(["to-warmup", str(logs), "--out", str(tmp_path / "r.tfrecord")]) == 0
    assert len(read_logs([tmp_path / "r.tfrecord"])) == 3


def test_the_command_runs_without_tensorflow(logs: Path) -> None:
    done = run_watched("import sys\nfrom pipeline.traffic.__main__ import main\n"
                       f"code = main(['show', {str(logs)!r}])\n"
                       f"print('SEEN', {SEEN})\nsys.exit(code)\n")
    assert done.returncode == 0, done.stderr
    assert "SEEN []" in done.stdout and "x: [[10.0]]" in done.stdout
