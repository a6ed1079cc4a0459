"""The load tool's pure pieces: levels, the request it builds, how a level's numbers are merged and
printed, the generator's ceiling, what a machine cannot give, and the batching recommendation."""

from __future__ import annotations

import json
from array import array
from dataclasses import replace

import pytest

from pipeline import tf_protos
from pipeline.loadtest import batching
from pipeline.loadtest.results import WorkerReport, format_table, json_line, merge
from pipeline.loadtest.spec import Level, LoadSpec, connection_limit, parse_levels, too_many
from pipeline.loadtest.sweep import ceiling_warning, steadier_ceiling
from pipeline.loadtest.target import example_body, grpc_request, http_request


def tensor(dtype: str, *dims: int) -> dict:
    return {"dtype": dtype, "tensor_shape": {"dim": [{"size": str(d)} for d in dims]}}


def metadata(inputs: dict, method: str = "tensorflow/serving/predict", name: str = "serving_default") -> dict:
    return {"model_spec": {"name": "m", "version": "3"}, "metadata": {"signature_def": {"signature_def": {
        name: {"inputs": inputs, "outputs": {"y": tensor("DT_FLOAT", -1, 1)}, "method_name": method},
        "__saved_model_init_op": {"inputs": {}, "outputs": {}}}}}}


TUTORIAL = metadata({"inputs": tensor("DT_FLOAT", -1, 2)})


def report(latencies_s: list[float], kinds: dict[str, int], covered: float = 2.0, clients: int = 2,
           examples: dict[str, str] | None = None) -> WorkerReport:
    answered = sum(n for k, n in kinds.items() if k == "OK" or k.startswith(("HTTP", "gRPC")))
    return WorkerReport(array("d", latencies_s).tobytes(), kinds, examples or {}, answered, clients, clients,
                        covered)


def test_levels_are_read_in_order_and_bad_ones_named() -> None:
    assert parse_levels("1, 8,32,8") == (1, 8, 32)
    assert parse_levels("0.5,10", what="rate", integer=False) == (0.5, 10.0)
    for text, words in (("1,x", "'x' is not a whole number"), ("0", "must be above 0"), ("", "at least one")):
        with pytest.raises(ValueError, match=words):
            parse_levels(text)


def test_the_default_request_is_one_example_built_from_the_signature() -> None:
    """One valid example of each input, as the Predict page builds it from a signature (row
    format when every input is batched, columnar otherwise); tf.Example signatures need a body."""
    assert example_body(TUTORIAL) == {"instances": [[0.0, 0.0]]}
    two = metadata({"a": tensor("DT_INT64", -1, 3), "b": tensor("DT_STRING", -1)}, name="pair")
    assert example_body(two, "pair") == {
        "signature_name": "pair", "instances": [{"a": [0, 0, 0], "b": "example"}]}
    fixed = metadata({"x": tensor("DT_FLOAT", 2), "k": tensor("DT_BOOL", -1)})
    assert example_body(fixed) == {"inputs": {"k": [False], "x": [0.0, 0.0]}}
    with pytest.raises(ValueError, match="tf.Examples"):
        regress = metadata({"inputs": tensor("DT_STRING", -1)}, "tensorflow/serving/regress")
        example_body(regress)
    with pytest.raises(ValueError, match="no signature 'nope'.*serving_default"):
        example_body(TUTORIAL, "nope")


def test_the_rest_request_is_one_keep_alive_post() -> None:
    raw = http_request("http://127.0.0.1:8501/v1/models/m/versions/3:predict", {"instances": [[1.0, 2.0]]})
    head, body = raw.split(b"\r\n\r\n")
    assert head.startswith(b"POST /v1/models/m/versions/3:predict HTTP/1.1\r\nHost: 127.0.0.1:8501\r\n")
    assert f"Content-Length: {len(body)}".encode() in head and b"Connection: close" not in head
    assert json.loads(body) == {"instances": [[1.0, 2.0]]}


def test_the_grpc_request_is_tf_servings_predict_request_typed_by_the_signature() -> None:
    spec = LoadSpec(url="http://h:1", model="m", label="stable")
    payload = grpc_request(spec, {"instances": [[1, 2], [5, 7]]}, TUTORIAL)
    request = tf_protos.message_class("tensorflow.serving.PredictRequest").FromString(payload)
    assert (request.model_spec.name, request.model_spec.version_label) == ("m", "stable")
    assert request.model_spec.signature_name == "serving_default"
    proto = request.inputs["inputs"]
    assert proto.dtype == 1 and [d.size for d in proto.tensor_shape.dim] == [2, 2]  # DT_FLOAT
    assert len(proto.tensor_content) == 16
    words = metadata({"s": tensor("DT_STRING", -1)})
    payload = grpc_request(LoadSpec(url="http://h:1", model="m", version=2),
                           {"inputs": ["a", {"b64": "Yg=="}]}, words)
    request = tf_protos.message_class("tensorflow.serving.PredictRequest").FromString(payload)
    assert request.model_spec.version.value == 2 and list(request.inputs["s"].string_val) == [b"a", b"b"]
    pair = metadata({"a": tensor("DT_INT64", -1), "b": tensor("DT_STRING", -1)})
    with pytest.raises(ValueError, match=r"unknown input\(s\) z"):
        grpc_request(spec, {"instances": [{"a": 1, "b": "x", "z": 1}]}, pair)
    with pytest.raises(ValueError, match="row 2: 'x' is not a number"):
        grpc_request(spec, {"instances": [[1, 2], [3, "x"]]}, TUTORIAL)


def test_a_level_merges_its_workers_counts_and_percentiles() -> None:
    """Nearest-rank percentiles over every worker's answers; answered requests per second include
    error answers (as wrk and h2load count), OK per second does not; no-answer failures are
    errors but not answers."""
    first = report([0.001 * i for i in range(1, 51)], {"OK": 48, "HTTP 503": 2},
                   examples={"HTTP 503": "Server is overloaded"})
    second = report([0.001 * i for i in range(51, 101)], {"OK": 50, "connection reset": 1})
    result = merge(Level(4), "REST", 2.0, [first, second])
    assert (result.answered, result.ok, result.errors, result.requests) == (100, 98, 3, 101)
    assert result.error_kinds == {"HTTP 503": 2, "connection reset": 1}
    assert result.error_examples == {"HTTP 503": "Server is overloaded"}
    assert result.requests_per_second == 50.0 and result.ok_per_second == 49.0
    assert (result.p50_ms, result.p90_ms, result.p99_ms, result.max_ms) == pytest.approx((50, 90, 99, 100))
    assert not result.partial and result.clients == 4
    stopped = merge(Level(4), "REST", 10.0, [report([0.001], {"OK": 1}, covered=0.5)])
    assert stopped.partial and stopped.duration_s == 0.5 and stopped.requests_per_second == 2.0


def test_json_lines_carry_the_agreed_fields_and_the_table_names_errors_by_kind() -> None:
    result = merge(Level(8), "gRPC", 1.0, [report([0.002, 0.004], {"OK": 1, "gRPC NOT_FOUND": 1})])
    line = json.loads(json_line(result))
    for key in ("concurrency", "requests_per_second", "p50_ms", "p90_ms", "p99_ms", "errors", "error_kinds"):
        assert key in line
    assert line["concurrency"] == 8 and line["errors"] == 1 and line["error_kinds"] == {"gRPC NOT_FOUND": 1}
    table = format_table([result])
    assert "concurrency 8" in table and "gRPC NOT_FOUND: 1" in table
    nothing = merge(Level(1), "REST", 1.0, [report([], {"connection refused": 7})])
    assert nothing.p50_ms is None and nothing.answered == 0 and nothing.errors == 7


def test_the_ceiling_warning_starts_at_80_percent() -> None:
    result = merge(Level(8), "REST", 1.0, [report([0.001] * 800, {"OK": 800})])
    assert ceiling_warning(replace(result, generator_ceiling_rps=1001.0)) is None
    warned = ceiling_warning(replace(result, generator_ceiling_rps=1000.0))
    assert warned is not None and "80%" in warned and "generator" in warned


def test_a_noisy_low_ceiling_reading_is_lifted_to_what_fewer_clients_reached() -> None:
    seen: dict[Level, float] = {}
    assert steadier_ceiling(5000.0, Level(1), seen) == 5000.0
    assert steadier_ceiling(1600.0, Level(2), seen) == 5000.0  # a busy moment, not the generator's limit
    assert steadier_ceiling(9000.0, Level(8), seen) == 9000.0
    assert steadier_ceiling(None, Level(16), seen) == 9000.0


def test_a_level_the_machine_cannot_open_is_refused_with_the_numbers() -> None:
    limit = connection_limit(2)
    assert too_many(Level(limit), 2) is None
    reason = too_many(Level(limit + 1), 2)
    assert reason is not None and "ulimit -n" in reason and f"{limit:,}" in reason


def test_the_recommendation_is_the_fastest_setting_within_the_p99_target() -> None:
    def level(concurrency: int, ok_per_s: float, p99: float, errors: int = 0):
        result = merge(Level(concurrency), "REST", 1.0, [report([p99 / 1000], {"OK": int(ok_per_s)})])
        return replace(result, p99_ms=p99, ok_per_second=ok_per_s, errors=errors)

    off = batching.SettingResult(batching.BatchingSetting(False),
                                 levels=[level(8, 1500, 9), level(32, 1700, 30)])
    on = batching.SettingResult(batching.BatchingSetting(True, 32, 0, 1),
                                levels=[level(8, 3000, 6), level(32, 6000, 12), level(64, 9000, 40)])
    slow = batching.SettingResult(batching.BatchingSetting(True, 128, 2000, 1),
                                  levels=[level(32, 9999, 5, 3)])
    rec = batching.recommend([off, on, slow], 20.0)
    assert rec.setting == on.setting and rec.concurrency == 32 and rec.ok_per_second == 6000
    assert rec.flags.startswith("--enable_batching=true --batching_parameters_file=")
    none = batching.recommend([off, on], 1.0)
    assert none.setting is None and "lowest p99 was 6.00 ms" in none.reason
    assert batching.recommend([off], 100.0).flags == "--enable_batching=false"


def test_the_parameters_text_is_read_by_the_servers_own_parser() -> None:
    from pipeline.serving.model_config import parse_batching_parameters_text

    setting = batching.BatchingSetting(True, 64, 1500, 2)
    options = parse_batching_parameters_text(setting.parameters_text())
    assert (options.max_batch_size, options.batch_timeout_micros, options.num_batch_threads) == (64, 1500, 2)
    assert batching.BatchingSetting(False).parameters_text() == ""
    with pytest.raises(ValueError):
        batching.BatchingSetting(True, 0).check()


def test_the_comparisons_server_command_gives_every_flag() -> None:
    """The embedded server's defaults differ between versions of this project and TF Serving:
    the comparison never relies on them."""
    from pathlib import Path

    server = batching.EmbeddedServer(8501, "m", Path("/models/m"), Path("/run"), grpc_port=8500)
    on = batching.server_command(server, batching.BatchingSetting(True), Path("/run/b.txt"))
    flags = ("--rest_api_port", "--port", "--model_name", "--model_base_path", "--batching_parameters_file")
    for flag in flags:
        assert flag in on
    assert "--enable_batching=true" in on
    assert "--enable_batching=false" in batching.server_command(server, batching.BatchingSetting(False), None)


def test_a_spec_survives_its_json() -> None:
    spec = LoadSpec(url="http://h:1", model="m", grpc="h:2", concurrency=(1, 4), rates=(10.0,),
                    body={"instances": [[1]]}, tags={"batching": "off"})
    assert LoadSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    assert spec.levels == (Level(4, 10.0),) and spec.transport == "gRPC"
