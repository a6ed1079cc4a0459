"""Request logging (`pipeline/serving/request_logs.py`, `request_log.py`, `log_files.py`): sampling
decided before any serialization, PredictionLog records a warm-up reader accepts, companion facts
joined by offset, rotation and the size cap, a bounded queue that drops (counted, said once)
instead of holding a request up, a full disk, and nothing lost when the server stops.

A fake clock names the files; a fake disk (a sink that blocks or refuses) stands for a slow or full
disk. No sleeps: every wait is for an event, with a generous deadline."""

from __future__ import annotations

import errno
import io
import logging
import random
import threading
from pathlib import Path

import pytest

from pipeline import tf_protos
from pipeline.formats import tfrecord
from pipeline.serving import log_files
from pipeline.serving.log_files import Api, RequestFacts, Transport
from pipeline.serving.model_config import LoggingConfig, ModelConfig, parse_model_config_text
from pipeline.serving.request_log import FileSink, LogOptions, RequestLogger
from pipeline.serving.request_logs import RequestLogs, check_config

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def predict_request(value: float, model: str = "m") -> object:
    request = tf_protos.message_class("tensorflow.serving.PredictRequest")()
    request.model_spec.name = model
    tensor = request.inputs["x"]
    tensor.dtype = 1
    tensor.tensor_shape.dim.add().size = 1
    tensor.float_val.append(value)
    return request


def predict_response(value: float) -> object:
    response = tf_protos.message_class("tensorflow.serving.PredictResponse")()
    response.model_spec.name = "m"
    response.model_spec.version.value = 3
    tensor = response.outputs["y"]
    tensor.dtype = 1
    tensor.float_val.append(value)
    return response


def logging_config(prefix: Path | str, rate: float = 1.0, kind: str = "file") -> LoggingConfig:
    return LoggingConfig(collector_type=kind, filename_prefix=str(prefix), sampling_rate=rate)


def read_logs(prefix: Path) -> list[object]:
    """Every PredictionLog under `prefix`, in writing order."""
    cls = tf_protos.message_class("tensorflow.serving.PredictionLog")
    return [cls.FromString(data) for path in log_files.log_files(str(prefix))
            for data in tfrecord.iter_records(path)]


def read_facts(prefix: Path) -> list[RequestFacts]:
    found = []
    for path in log_files.log_files(str(prefix)):
        for line in log_files.sidecar_path(path).read_bytes().splitlines():
            facts = RequestFacts.from_line(line)
            assert facts is not None
            found.append(facts)
    return found


class Outcomes:
    """What `on_outcome` was told, summed by status code."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, model: str, code: str, count: int) -> None:
        with self.lock:
            self.counts[code] = self.counts.get(code, 0) + count


def make_logger(tmp_path: Path, rate: float = 1.0, options: LogOptions | None = None,
                **kwargs) -> RequestLogger:
    prefix = str(tmp_path / "logs" / "m")
    return RequestLogger("m", logging_config(prefix, rate), prefix, options or LogOptions(),
                         clock=kwargs.pop("clock", lambda: T0), **kwargs)


def test_a_logged_predict_is_a_prediction_log_with_its_request_response_and_metadata(tmp_path: Path) -> None:
    logs = RequestLogs()
    prefix = tmp_path / "logs" / "m"
    assert logs.apply([ModelConfig("m", Path("/models/m"), logging=logging_config(prefix))]) == []
    logs.record("m", Api.PREDICT, Transport.GRPC, "OK", 0.0042, request=predict_request(1.5),
                response=predict_response(2.5).SerializeToString(), version=3, signature="serving_default")
    logs.record("m", Api.PREDICT, Transport.REST, "INVALID_ARGUMENT", 0.001, request=predict_request(9.0),
                message="bad input", label="stable")
    logs.record("other", Api.PREDICT, Transport.REST, "OK", 0.001, request=predict_request(1.0))
    logs.close()

    [first, failed] = read_logs(prefix)
    assert first.WhichOneof("log_type") == "predict_log"
    assert first.predict_log.request == predict_request(1.5)
    assert first.predict_log.response == predict_response(2.5)
    spec = first.log_metadata.model_spec
    assert (spec.name, spec.version.value, spec.signature_name) == ("m", 3, "serving_default")
    assert first.log_metadata.sampling_config.sampling_rate == 1.0
    assert first.log_metadata.timestamp_secs > 1_700_000_000
    assert not failed.predict_log.HasField("response")
    assert failed.log_metadata.model_spec.version_label == "stable"

    facts = read_facts(prefix)
    assert [(f.transport, f.status, f.api, f.version, f.label, f.latency_ms) for f in facts] == [
        ("gRPC", "OK", "predict", 3, None, 4.2), ("REST", "INVALID_ARGUMENT", "predict", None, "stable", 1.0)]
    assert facts[1].message == "bad input"
    [path] = log_files.log_files(str(prefix))
    data = path.read_bytes()
    for fact in facts:  # the companion record names where its record starts and how long it is
        record = next(tfrecord.read_stream(io.BytesIO(data[fact.offset:]),
                                           len(data) - fact.offset, tfrecord.ReadReport()))
        assert len(record) == fact.bytes


@pytest.mark.parametrize("api", list(Api))
def test_every_api_lands_in_its_own_prediction_log_field(tmp_path: Path, api: Api) -> None:
    logger = make_logger(tmp_path)
    request = tf_protos.message_class(api.request_type)()
    response = tf_protos.message_class(api.response_type)()
    if api is Api.MULTI_INFERENCE:
        request.tasks.add().model_spec.name = "m"
        response.results.add().model_spec.name = "m"
    else:
        request.model_spec.name = response.model_spec.name = "m"
    assert logger.log(api, Transport.GRPC, "OK", 0.01, request=request, response=response)
    logger.close()
    [entry] = read_logs(tmp_path / "logs" / "m")
    assert entry.WhichOneof("log_type") == api.log_field
    assert getattr(entry, api.log_field).request == request


def test_sampling_a_quarter_lands_in_the_binomial_range_and_unsampled_requests_are_never_built(
        tmp_path: Path) -> None:
    draws = random.Random(2024)
    logs = RequestLogs(make_logger=lambda *a, **k: RequestLogger(*a, **k, draw=draws.random))
    prefix = tmp_path / "logs" / "m"
    logs.apply([ModelConfig("m", Path("/models/m"), logging=logging_config(prefix, 0.25))])
    built = []

    def build() -> object:
        built.append(1)
        return predict_request(float(len(built)))

    n = 400
    for _ in range(n):
        logs.record("m", Api.PREDICT, Transport.REST, "OK", 0.001, request=build, response=None)
    logs.close()
    logged = read_logs(prefix)
    # Binomial(400, 0.25): mean 100, sd 8.7; 4 sd either side
    assert 65 <= len(logged) <= 135
    assert len(built) == len(logged)  # a request not sampled was never built or serialized
    assert logged[0].log_metadata.sampling_config.sampling_rate == 0.25


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (1.0, 50)])
def test_rate_zero_logs_nothing_and_rate_one_everything(tmp_path: Path, rate: float, expected: int) -> None:
    logs = RequestLogs()
    prefix = tmp_path / "logs" / "m"
    logs.apply([ModelConfig("m", Path("/models/m"), logging=logging_config(prefix, rate))])
    calls = []
    for i in range(50):
        logs.record("m", Api.PREDICT, Transport.REST, "OK", 0.001,
                    request=lambda i=i: calls.append(i) or predict_request(float(i)))
    logs.close()
    assert len(read_logs(prefix)) == expected == len(calls)


def test_files_rotate_by_size_in_writing_order_and_the_cap_removes_the_oldest(tmp_path: Path) -> None:
    ticks = iter(range(10_000))
    options = LogOptions(max_file_bytes=600, max_total_bytes=6_000)
    logger = make_logger(tmp_path, options=options, clock=lambda: T0 + next(ticks))
    for i in range(60):
        assert logger.log(Api.PREDICT, Transport.REST, "OK", 0.001, request=predict_request(float(i)))
        if i % 7 == 0:
            assert logger.flush()
    logger.close()
    prefix = tmp_path / "logs" / "m"
    files = log_files.log_files(str(prefix))
    assert len(files) >= 2
    assert files == sorted(files)
    sizes = [p.stat().st_size + log_files.sidecar_path(p).stat().st_size for p in files]
    assert sum(sizes[:-1]) <= 6_000  # the cap holds for all but the file written since it was checked
    values = [entry.predict_log.request.inputs["x"].float_val[0] for entry in read_logs(prefix)]
    assert values == sorted(values) and values[-1] == 59.0  # the newest kept, oldest removed
    assert values[0] > 0.0
    assert [f.offset for f in read_facts(prefix)][:1] == [0]


class SlowDisk:
    """A sink whose writes wait until `go` is set (a disk that takes its time)."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.entered = threading.Event()

    def __call__(self, path: Path) -> FileSink:
        sink = FileSink(path)
        original = sink.write

        def write(record: bytes, facts: bytes) -> None:
            self.entered.set()
            assert self.go.wait(60), "the test never released the slow disk"
            original(record, facts)

        sink.write = write  # type: ignore[method-assign]
        return sink


def test_a_slow_disk_fills_the_queue_then_drops_are_counted_and_said_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    disk, outcomes = SlowDisk(), Outcomes()
    logger = make_logger(tmp_path, options=LogOptions(max_queue_records=5), open_sink=disk,
                         on_outcome=outcomes)
    assert logger.log(Api.PREDICT, Transport.REST, "OK", 0.001, request=predict_request(0.0))
    assert disk.entered.wait(60)  # the writer holds record 0, stuck on the disk
    accepted = []
    done = threading.Event()

    def requests() -> None:  # 20 requests while the disk is stuck: none of them may wait for it
        accepted.extend(logger.log(Api.PREDICT, Transport.REST, "OK", 0.001,
                                   request=predict_request(float(i))) for i in range(1, 21))
        done.set()

    with caplog.at_level(logging.WARNING):
        threading.Thread(target=requests).start()
        assert done.wait(60), "a request waited for the slow disk"
    assert accepted == [True] * 5 + [False] * 15
    assert outcomes.counts == {"RESOURCE_EXHAUSTED": 15}
    warnings = [r for r in caplog.records if "dropping records" in r.getMessage()]
    assert len(warnings) == 1 and "queue is full" in warnings[0].getMessage()
    disk.go.set()
    logger.close()
    assert outcomes.counts == {"RESOURCE_EXHAUSTED": 15, "OK": 6}
    assert len(read_logs(tmp_path / "logs" / "m")) == 6


class FullDisk:
    """A sink that refuses every write with ENOSPC until `full` is cleared."""

    def __init__(self) -> None:
        self.full = threading.Event()
        self.full.set()

    def __call__(self, path: Path) -> FileSink:
        sink = FileSink(path)
        original = sink.write

        def write(record: bytes, facts: bytes) -> None:
            if self.full.is_set():
                raise OSError(errno.ENOSPC, "No space left on device")
            original(record, facts)

        sink.write = write  # type: ignore[method-assign]
        return sink


def test_a_full_disk_never_fails_a_request_and_logging_resumes_when_space_returns(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    disk, outcomes = FullDisk(), Outcomes()
    logger = make_logger(tmp_path, options=LogOptions(retry_after_error_s=0.01), open_sink=disk,
                         on_outcome=outcomes)
    with caplog.at_level(logging.INFO):
        for i in range(3):
            assert logger.log(Api.PREDICT, Transport.REST, "OK", 0.001, request=predict_request(float(i)))
            logger.flush()
        assert outcomes.counts == {"RESOURCE_EXHAUSTED": 3}
        disk.full.clear()
        assert logger.log(Api.PREDICT, Transport.REST, "OK", 0.001, request=predict_request(7.0))
        assert logger.flush()
    logger.close()
    assert outcomes.counts == {"RESOURCE_EXHAUSTED": 3, "OK": 1}
    messages = [r.getMessage() for r in caplog.records]
    assert sum("dropping records" in m and "No space left" in m for m in messages) == 1
    assert any("writing again after 3 dropped" in m for m in messages)
    logged = read_logs(tmp_path / "logs" / "m")
    assert [e.predict_log.request.inputs["x"].float_val[0] for e in logged] == [7.0]


def test_a_request_that_cannot_be_serialized_is_dropped_not_raised(tmp_path: Path) -> None:
    outcomes = Outcomes()
    logger = make_logger(tmp_path, on_outcome=outcomes)

    def broken() -> object:
        raise ValueError("no tensor")

    assert logger.log(Api.PREDICT, Transport.REST, "OK", 0.001, request=broken) is False
    logger.close()
    assert outcomes.counts == {"INTERNAL": 1}


def test_stopping_writes_everything_queued_first(tmp_path: Path) -> None:
    """What SIGTERM does to the server (its exit path closes the logs): every record accepted
    before the stop is on disk after it, none after."""
    disk, outcomes = SlowDisk(), Outcomes()
    logger = make_logger(tmp_path, open_sink=disk, on_outcome=outcomes)
    accepted = sum(logger.log(Api.PREDICT, Transport.GRPC, "OK", 0.001, request=predict_request(float(i)))
                   for i in range(300))
    assert disk.entered.wait(60)
    closer = threading.Thread(target=logger.close, kwargs={"timeout": 60})
    closer.start()
    disk.go.set()
    closer.join(60)
    assert not closer.is_alive()
    assert logger.log(Api.PREDICT, Transport.GRPC, "OK", 0.001, request=predict_request(1.0)) is False
    assert accepted == 300 == len(read_logs(tmp_path / "logs" / "m")) == outcomes.counts["OK"]


def test_records_reach_the_disk_without_a_flush_call(tmp_path: Path) -> None:
    logger = make_logger(tmp_path, options=LogOptions(flush_interval_s=0.05))
    logger.log(Api.PREDICT, Transport.REST, "OK", 0.001, request=predict_request(1.0))
    deadline = threading.Event()
    for _ in range(600):
        if logger.written == 1:
            break
        deadline.wait(0.1)
    assert logger.written == 1
    assert len(read_logs(tmp_path / "logs" / "m")) == 1
    logger.close()


@pytest.mark.parametrize(("config", "says"), [
    (LoggingConfig("kafka", "/tmp/x", 1.0), "unknown log_collector_config type 'kafka'"),
    (LoggingConfig("", "/tmp/x", 1.0), "unknown log_collector_config type ''"),
    (LoggingConfig("file", "", 1.0), "empty filename_prefix"),
    (LoggingConfig("file", "/tmp/x", 1.5), "sampling_rate must be between 0 and 1, got 1.5"),
    (LoggingConfig("file", "/tmp/x", 1.0, custom=True), "custom_logging_config is not supported"),
])
def test_a_logging_config_that_cannot_be_honoured_is_refused_with_its_reason(config: LoggingConfig,
                                                                            says: str) -> None:
    with pytest.raises(ValueError, match="Model m: logging_config refused") as error:
        check_config("m", config)
    assert says in str(error.value)


def test_an_unwritable_prefix_is_refused_and_the_other_models_still_log(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    logs = RequestLogs()
    problems = logs.apply([
        ModelConfig("bad", Path("/models/bad"), logging=logging_config(blocker / "logs" / "bad")),
        ModelConfig("good", Path("/models/good"), logging=logging_config(tmp_path / "logs" / "good")),
        ModelConfig("plain", Path("/models/plain")),
    ])
    assert len(problems) == 1
    assert problems[0].startswith("Model bad: logging_config refused, the model is served without request "
                                  "logging: filename_prefix")
    assert "cannot be written" in problems[0]
    assert logs.logger("bad") is None and logs.logger("plain") is None
    assert logs.logger("good") is not None
    logs.close()


def test_a_reload_keeps_an_unchanged_log_and_closes_a_changed_or_removed_one(tmp_path: Path) -> None:
    logs = RequestLogs()
    a = ModelConfig("a", Path("/models/a"), logging=logging_config(tmp_path / "a" / "a"))
    b = ModelConfig("b", Path("/models/b"), logging=logging_config(tmp_path / "b" / "b"))
    logs.apply([a, b])
    first_a, first_b = logs.logger("a"), logs.logger("b")
    logs.record("b", Api.PREDICT, Transport.REST, "OK", 0.001, request=predict_request(1.0))
    logs.apply([a, ModelConfig("b", Path("/models/b"), logging=logging_config(tmp_path / "b" / "b", 0.5))])
    assert logs.logger("a") is first_a and logs.logger("b") is not first_b
    assert first_b is not None and first_b.written == 1  # closed: its queue written first
    logs.apply([a])
    assert logs.logger("b") is None
    logs.close()


def test_models_config_logging_config_is_parsed_as_written() -> None:
    [config] = parse_model_config_text("""
        model_config_list { config {
          name: "m" base_path: "/models/m" model_platform: "tensorflow"
          logging_config {
            log_collector_config { type: "file" filename_prefix: "/var/log/m" }
            sampling_config { sampling_rate: 0.25 }
          }
        } }""")
    assert config.logging == LoggingConfig("file", "/var/log/m", 0.25)
    [plain] = parse_model_config_text(
        'model_config_list { config { name: "m" base_path: "/m" model_platform: "tensorflow" } }')
    assert plain.logging is None


def test_file_names_start_with_the_prefix_and_sort_in_writing_order(tmp_path: Path) -> None:
    prefix = str(tmp_path / "logs" / "m")
    names = [log_files.log_file_path(prefix, T0 + s, pid, seq)
             for s, pid, seq in [(0, 9, 1), (0, 9, 2), (5, 3, 1), (5, 10, 1)]]
    assert all(str(p).startswith(prefix + ".20231114T221320Z") or str(p).startswith(prefix + ".2023")
               for p in names)
    assert names[0].name == "m.20231114T221320Z-9-0001.tfrecord"
    assert log_files.sidecar_path(names[0]).name == "m.20231114T221320Z-9-0001.requests.jsonl"
    in_folder = log_files.log_file_path(str(tmp_path / "logs") + "/", T0, 1, 1)
    assert in_folder.parent == tmp_path / "logs" and in_folder.name.startswith("20231114T")
    names[0].parent.mkdir(parents=True)
    for path in reversed(names):
        path.touch()
        log_files.sidecar_path(path).touch()
    (tmp_path / "logs" / "m.notes.txt").touch()
    (tmp_path / "logs" / "mm.20231114T221320Z-9-0001.tfrecord").touch()  # another prefix
    assert log_files.log_files(prefix) == names


@pytest.mark.parametrize(("version", "label", "signature", "rate", "when"), [
    (3, None, "serving_default", 1.0, 1_700_000_000), (None, "stable", "", 0.25, 1),
    (0, None, "sig", 0.0, 0), (None, None, "", 1.0, 2**40), (2**62, "ignored", "s", 1e-9, 5)])
def test_log_metadata_is_written_byte_for_byte_as_protobuf_writes_it(version, label, signature, rate,
                                                                     when) -> None:
    expected = tf_protos.message_class("tensorflow.serving.LogMetadata")()
    expected.model_spec.name = "m"
    if version is not None:
        expected.model_spec.version.value = version
    elif label:
        expected.model_spec.version_label = label
    if signature:
        expected.model_spec.signature_name = signature
    expected.sampling_config.sampling_rate = rate
    expected.timestamp_secs = when
    written = log_files.log_metadata(log_files.model_spec("m", version, label, signature),
                                     log_files.sampling_config(rate), when)
    assert written == expected.SerializeToString()
