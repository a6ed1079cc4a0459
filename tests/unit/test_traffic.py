"""Reading recorded traffic (`pipeline/traffic/`): logged requests with their facts, filters newest
first, damaged files read up to the damage with what was skipped counted, files that grow read
incrementally, answers compared value by value, replays on two targets (a fake server here; a real
one in tests/server/test_traffic_replay.py) and warm-up files made from logs."""

from __future__ import annotations

import io
import math
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from pipeline import tf_protos
from pipeline.client.warmup import export_warmup
from pipeline.formats import tfrecord
from pipeline.serving import log_files
from pipeline.serving.log_files import Transport
from pipeline.serving.request_log import LogOptions
from pipeline.traffic import answers, export
from pipeline.traffic.logs import LogReader, ReadSummary, find_log_files, read_logs
from pipeline.traffic.replay import Answer, Target, recorded, replay
from pipeline.traffic.select import Filter, parse_time, select
from tests.support.traffic_logs import T0, Call, write_traffic
from tests.unit.test_warmup_file import version_with_signatures

CALLS = [
    Call([1.0], [3.0], latency_ms=2.5),
    Call([2.0], [4.0], transport=Transport.GRPC, version=2, label="canary"),
    Call([9.0], None, status="INVALID_ARGUMENT", message="bad x"),
    Call([4.0, 5.0], [6.0, 7.0], transport=Transport.GRPC),
]


@pytest.fixture
def logged(tmp_path: Path) -> Path:
    prefix = tmp_path / "traffic" / "m" / "requests"
    write_traffic(prefix, CALLS)
    return prefix


def test_every_logged_request_reads_back_with_its_facts_and_previews(logged: Path) -> None:
    summary = ReadSummary()
    entries = read_logs([logged], summary)
    assert summary.describe() == "1 file, 4 logged requests" and not summary.damaged
    first, second, failed, last = entries
    assert first.time == datetime.fromtimestamp(T0, UTC)
    assert (first.model, first.version, first.api, first.transport, first.status, first.latency_ms) == (
        "m", 1, "predict", "REST", "OK", 2.5)
    assert first.inputs == "x: [[1.0]]" and first.outputs == "y: [[3.0]]"
    assert (second.transport, second.target) == ("gRPC", "version 2 (canary)")
    assert (failed.ok, failed.status, failed.message, failed.outputs) == (
        False, "INVALID_ARGUMENT", "bad x", "")
    assert last.inputs == "x: [[4.0],[5.0]]"
    log = last.prediction_log()
    assert list(log.predict_log.request.inputs["x"].float_val) == [4.0, 5.0]


def test_a_folder_a_prefix_and_a_file_find_the_same_logs(logged: Path) -> None:
    [file] = log_files.log_files(str(logged))
    assert find_log_files([logged]) == find_log_files([logged.parent]) == find_log_files([file]) == [file]
    assert find_log_files([logged.parent / "nothing-here"]) == []


def test_filters_keep_what_they_name_newest_first(logged: Path) -> None:
    entries = read_logs([logged])
    assert [e.inputs for e in select(entries)][:2] == ["x: [[4.0],[5.0]]", "x: [[9.0]]"]
    assert len(select(entries, Filter(transport="grpc"))) == 2
    assert [e.status for e in select(entries, Filter(status="failed"))] == ["INVALID_ARGUMENT"]
    assert len(select(entries, Filter(status="ok"))) == 3
    assert [e.label for e in select(entries, Filter(version=2))] == ["canary"]
    assert len(select(entries, Filter(label="canary"))) == 1
    since = datetime.fromtimestamp(T0 + 2, UTC)
    assert len(select(entries, Filter(since=since))) == 2
    assert len(select(entries, Filter(until=since))) == 3
    assert select(entries, Filter(model="other")) == []
    assert len(select(entries, limit=1)) == 1


def test_times_people_type() -> None:
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_time("10m", now) == now - timedelta(minutes=10)
    assert parse_time("1.5h", now) == now - timedelta(hours=1.5)
    assert parse_time("2025-01-01T00:00", now) == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_time("2025-01-01T00:00:00+01:00", now).utcoffset() == timedelta(hours=1)
    with pytest.raises(ValueError, match="not a time: 'soon'"):
        parse_time("soon", now)


def test_a_truncated_file_is_read_up_to_the_cut_and_a_corrupt_record_is_skipped(logged: Path) -> None:
    [file] = log_files.log_files(str(logged))
    data = bytearray(file.read_bytes())
    second = next(tfrecord.iter_records(file))  # flip a byte in the first record's data
    data[tfrecord.HEADER_BYTES + len(second) // 2] ^= 0xFF
    file.write_bytes(bytes(data[:-7]))  # and cut the last record short
    summary = ReadSummary()
    entries = read_logs([file], summary)
    assert [e.inputs for e in entries] == ["x: [[2.0]]", "x: [[9.0]]"]
    [report] = summary.damaged
    assert (report.read.corrupt, report.read.records) == (1, 2)
    assert report.read.unread_bytes > 0
    assert summary.describe().startswith("1 file, 2 logged requests; 1 damaged record(s) skipped")


def test_random_damage_never_raises(logged: Path, tmp_path: Path) -> None:
    [file] = log_files.log_files(str(logged))
    original = file.read_bytes()
    rng = random.Random(5)
    for _ in range(200):
        data = bytearray(original)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        damaged = tmp_path / "damaged.tfrecord"
        damaged.write_bytes(bytes(data[: rng.randint(0, len(data))]))
        summary = ReadSummary()
        entries = read_logs([damaged], summary)
        assert len(entries) + summary.skipped <= len(CALLS)
        for entry in entries:
            entry.prediction_log()


def test_a_file_that_is_not_a_request_log_says_so(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tfrecord"
    tfrecord.write_records(junk, [b"\xff\xff not a proto", b""])
    summary = ReadSummary()
    assert read_logs([junk], summary) == []
    assert summary.files[0].not_prediction_logs == 2 and summary.damaged


def test_a_warm_up_file_reads_without_a_companion(tmp_path: Path) -> None:
    version = version_with_signatures(tmp_path / "m" / "1", {"serving_default": ["x"]})
    path = export_warmup([{"inputs": {"x": [[1.0, 2.0]]}}], version, "m")
    [entry] = read_logs([path])
    assert (entry.model, entry.transport, entry.status, entry.ok) == ("m", None, None, False)
    assert entry.outputs == ""
    assert entry.inputs == "x: [[1.0,2.0]]"


def test_companion_lines_that_do_not_parse_are_skipped_and_counted(logged: Path) -> None:
    [file] = log_files.log_files(str(logged))
    sidecar = log_files.sidecar_path(file)
    sidecar.write_bytes(sidecar.read_bytes() + b'{"offset": 1, "half a line')
    summary = ReadSummary()
    assert len(read_logs([logged], summary)) == 4
    assert summary.files[0].facts_skipped == 1


def test_the_reader_takes_only_what_was_appended_and_forgets_removed_files(tmp_path: Path) -> None:
    prefix = tmp_path / "t" / "m"
    write_traffic(prefix, CALLS[:2], options=LogOptions(max_file_bytes=1))  # a file per request
    reader = LogReader()
    first, summary = reader.read([prefix])
    assert len(first) == 2 and len(summary.files) == 2
    write_traffic(prefix, CALLS[2:], start=T0 + 10, options=LogOptions(max_file_bytes=1))
    second, _ = reader.read([prefix])
    assert len(second) == 4 and second[:2] == first  # the first files were not read again
    oldest = log_files.log_files(str(prefix))[0]
    oldest.unlink()
    third, summary = reader.read([prefix])
    assert len(third) == 3 and len(summary.files) == 3


def test_answers_compare_value_by_value() -> None:
    a = {"y": np.array([[1.0], [2.0]])}
    assert answers.compare(a, {"y": np.array([[1.0], [2.0]])}) == (0.0, "")
    assert answers.compare(a, {"y": np.array([[1.0], [2.5]])}) == (0.5, "")
    assert answers.compare(a, {"": np.array([[1.0], [2.0]])}) == (0.0, "")  # REST's unnamed one output
    assert answers.compare(a, {"y": np.array([1.0, 2.0])})[0] == math.inf
    assert answers.compare({"y": np.array([np.nan])}, {"y": np.array([np.nan])}) == (0.0, "")
    assert answers.compare({"y": np.array([np.nan])}, {"y": np.array([1.0])})[1] == "y: NaN on one side only"
    text = {"c": np.array([b"low", b"high"], dtype=object)}
    assert answers.compare(text, {"c": np.array(["low", "high"], dtype=object)}) == (0.0, "")
    assert answers.compare(text, {"c": np.array(["low", "low"], dtype=object)})[0] == math.inf
    two, one = {"a": np.zeros(1), "b": np.zeros(1)}, {"a": np.zeros(1)}
    assert answers.compare(two, one)[1] == "outputs ['a', 'b'] vs ['a']"


def test_rest_and_grpc_answers_read_as_the_same_named_arrays() -> None:
    response = tf_protos.message_class("tensorflow.serving.PredictResponse")()
    tensor = response.outputs["y"]
    tensor.dtype = 1
    tensor.tensor_shape.dim.add().size = 2
    tensor.float_val.extend([1.5, 2.5])
    grpc = answers.response_outputs(response, "predict")
    rest = answers.rest_outputs({"outputs": [1.5, 2.5]}, "predict")
    assert answers.compare(grpc, rest) == (0.0, "")
    assert answers.compare(answers.rest_outputs({"outputs": {"y": [1.5, 2.5]}}, "predict"), grpc) == (0.0, "")
    classified = answers.rest_outputs({"results": [[["low", 0.1], ["high", 0.9]]]}, "classify")
    assert classified["scores"].tolist() == [[0.1, 0.9]]
    assert answers.rest_outputs({"results": [1.0, 2.0]}, "regress")["values"].tolist() == [1.0, 2.0]


@pytest.mark.parametrize(("text", "target"), [
    ("3", Target("version", 3)), ("version:12", Target("version", 12)),
    ("stable", Target("label", "stable")), ("label:canary", Target("label", "canary")),
    ("latest", Target("latest")), ("recorded", Target("recorded")),
])
def test_targets_people_type(text: str, target: Target) -> None:
    assert Target.parse(text) == target


@pytest.mark.parametrize("text", ["version:x", "", "label:", "3x"])
def test_a_target_that_is_none_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Target.parse(text)


class TwoVersions:
    """A fake server: version 1 answers y = x + 2, version 2 y = 2x - 2 (the same at x = 4); version
    3 is not loaded."""

    transport = "REST"

    def __init__(self) -> None:
        self.sent: list[tuple[str, int | None]] = []

    def send(self, entry, log, target: Target, model: str) -> Answer:
        self.sent.append((model, target.version))
        x = np.array(log.predict_log.request.inputs["x"].float_val)
        if target.version == 3:
            return Answer(None, "HTTP 404: Servable not found for request: Specific(m, 3)")
        y = x + 2 if target.version == 1 else 2 * x - 2
        return Answer({"y": y.reshape(-1, 1)}, latency_ms=1.0 if target.version == 1 else 3.0)


def test_a_replay_finds_exactly_the_requests_where_two_versions_differ(tmp_path: Path) -> None:
    prefix = tmp_path / "t" / "m"
    write_traffic(prefix, [Call([4.0], [6.0]), Call([1.0], [3.0]), Call([4.0, 4.0], [6.0, 6.0]),
                           Call([10.0], [12.0])])
    server = TwoVersions()
    result = replay(select(read_logs([prefix])), Target("version", 1), Target("version", 2), server)
    assert [(r.entry.inputs, r.difference, r.agree) for r in result.rows] == [
        ("x: [[10.0]]", 6.0, False), ("x: [[1.0]]", 3.0, False),
        ("x: [[4.0],[4.0]]", 0.0, True), ("x: [[4.0]]", 0.0, True)]
    s = result.summary
    assert (s.requests, s.agreeing, s.share_agreeing, s.largest) == (4, 2, 0.5, 6.0)
    assert (s.latency("a"), s.latency("b")) == (1.0, 3.0)
    assert server.sent[:2] == [("m", 1), ("m", 2)]


def test_a_side_that_fails_disagrees_and_recorded_answers_are_a_target(tmp_path: Path) -> None:
    prefix = tmp_path / "t" / "m"
    write_traffic(prefix, [Call([1.0], [3.0]), Call([5.0], None, status="INVALID_ARGUMENT", message="no")])
    entries = select(read_logs([prefix]))
    result = replay(entries, Target("recorded"), Target("version", 1), TwoVersions())
    by_input = {r.entry.inputs: r for r in result.rows}
    assert by_input["x: [[1.0]]"].agree and by_input["x: [[1.0]]"].difference == 0.0
    assert by_input["x: [[5.0]]"].note == "A failed: INVALID_ARGUMENT: no"
    missing = replay(entries, Target("version", 1), Target("version", 3), TwoVersions())
    assert missing.summary.failed_b == 2 and missing.summary.agreeing == 0
    assert missing.rows[0].difference == math.inf
    assert recorded(entries[1], entries[1].prediction_log()).outputs is not None


def test_a_record_removed_since_it_was_read_is_a_row_saying_so(tmp_path: Path) -> None:
    prefix = tmp_path / "t" / "m"
    [file] = write_traffic(prefix, [Call([1.0], [3.0])])
    entries = read_logs([prefix])
    file.unlink()
    result = replay(entries, Target("version", 1), Target("version", 2), TwoVersions())
    assert result.rows[0].note == "record unreadable" and not result.rows[0].agree


def test_ok_requests_become_a_warm_up_file_the_version_accepts(logged: Path, tmp_path: Path) -> None:
    version = version_with_signatures(tmp_path / "models" / "m" / "1", {"serving_default": ["x"]})
    path, count, skipped = export.write_warmup(select(read_logs([logged])), version)
    assert path == version / "assets.extra" / "tf_serving_warmup_requests"
    assert count == 3 and len(skipped) == 1 and "not answered OK (INVALID_ARGUMENT)" in skipped[0]
    logs = read_logs([path])
    assert {e.inputs for e in logs} == {"x: [[1.0]]", "x: [[2.0]]", "x: [[4.0],[5.0]]"}
    assert all(e.outputs == "" for e in logs)  # responses are not kept: TF Serving replays requests


def test_a_warm_up_file_that_would_fail_the_load_is_refused_and_the_old_one_kept(logged: Path,
                                                                                  tmp_path: Path) -> None:
    version = version_with_signatures(tmp_path / "models" / "m" / "1", {"serving_default": ["inputs"]})
    (version / "assets.extra").mkdir()
    (version / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"old")
    with pytest.raises(ValueError, match=r"request 1 sends inputs \['x'\], signature 'serving_default' "
                                         r"takes \['inputs'\]"):
        export.write_warmup(read_logs([logged]), version)
    other = version_with_signatures(tmp_path / "models" / "m" / "2", {"other": ["x"]})
    with pytest.raises(ValueError, match="names signature 'serving_default', which the version does not"):
        export.write_warmup(read_logs([logged]), other)
    assert (version / "assets.extra" / "tf_serving_warmup_requests").read_bytes() == b"old"


def test_downloads_hold_the_chosen_requests(logged: Path) -> None:
    entries = select(read_logs([logged]))
    whole = export.as_tfrecord(export.whole_records(entries))
    assert len(list(tfrecord.read_stream(io.BytesIO(whole), len(whole), tfrecord.ReadReport()))) == 4
    [item, *_] = export.json_entries(entries)
    assert item["status"] == "OK" and item["transport"] == "gRPC"
    assert item["prediction_log"]["predict_log"]["request"]["inputs"]["x"]["float_val"] == [4.0, 5.0]


def test_reading_logs_never_imports_tensorflow(logged: Path) -> None:
    from tests.support.no_tensorflow import SEEN, run_watched

    done = run_watched("from pipeline.traffic.logs import read_logs\n"
                       "from pipeline.traffic import export, replay\n"
                       f"entries = read_logs([{str(logged)!r}])\n"
                       "assert len(entries) == 4, entries\n"
                       "export.json_entries(entries)\n"
                       f"print('SEEN', {SEEN})\n")
    assert done.returncode == 0, done.stderr
    assert "SEEN []" in done.stdout, done.stdout


def test_a_reader_with_a_budget_reads_the_newest_files_and_says_what_it_left_out(tmp_path: Path) -> None:
    prefix = tmp_path / "t" / "m"
    files = write_traffic(prefix, [Call([float(i)], [float(i)]) for i in range(6)],
                          options=LogOptions(max_file_bytes=1))  # a file per request
    for age, path in enumerate(reversed(files)):  # the newest file by name is the newest by time
        os.utime(path, (T0 - age, T0 - age))
    budget = sum(p.stat().st_size for p in files[-2:])
    entries, summary = LogReader(max_bytes=budget).read([prefix])
    assert [e.inputs for e in entries] == ["x: [[4.0]]", "x: [[5.0]]"]
    assert summary.left_out_files == 4 and "4 older file(s)" in summary.describe()


def test_previews_are_made_only_when_asked_for(logged: Path) -> None:
    entries = read_logs([logged])
    assert all(e.previewed is None for e in entries)  # a companion line says everything else
    assert entries[0].inputs == "x: [[1.0]]" and entries[0].previewed is not None
    [file] = log_files.log_files(str(logged))
    file.unlink()
    assert entries[1].inputs.startswith("(record unreadable:") and entries[1].outputs == ""
