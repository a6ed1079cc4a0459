"""Command-line flags, models.config and monitoring config parsing, and the version source."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.model_dir import parse_version, version_dirs
from pipeline.serving.flags import (
    DEFAULT_MAX_BODY_BYTES,
    NO_OP_FLAGS,
    ignored_flag_messages,
    model_configs,
    parse_flags,
)
from pipeline.serving.model_config import (
    ConfigError,
    ModelConfig,
    VersionPolicy,
    parse_model_config_text,
    parse_monitoring_config_text,
)
from pipeline.serving.source import aspired_versions

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.serving", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_help_documents_every_flag() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for flag in ("--rest_api_port", "--rest_api_host", "--model_name", "--model_base_path",
                 "--model_config_file", "--file_system_poll_wait_seconds", "--rest_api_timeout_in_ms",
                 "--rest_api_enable_cors_support", "--monitoring_config_file", "--enable_prometheus",
                 "--rest_api_max_body_bytes", "--port", "--max_pending_requests", "--enable_batching"):
        assert flag in result.stdout


def test_unknown_flag_exits_2() -> None:
    result = run_cli("--no_such_flag=1")
    assert result.returncode == 2
    assert "unrecognized arguments: --no_such_flag=1" in result.stderr


def test_unusable_model_config_exits_1(tmp_path: Path) -> None:
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { name: 'x' base_path: '/m' model_platform: 'tensorflow' } "
                      "config { name: 'x' base_path: '/n' model_platform: 'tensorflow' } }")
    result = run_cli(f"--model_config_file={config}", "--rest_api_port=1")
    assert result.returncode == 1
    assert "Illegal to list model x multiple times" in result.stderr


def test_a_bad_model_config_fails_with_upstreams_words(tmp_path: Path) -> None:
    """testBadModelConfig of tensorflow_model_server_test.py looks for this text on stderr."""
    config = tmp_path / "bad_model_config.txt"
    config.write_text("improperly formatted file")
    result = run_cli(f"--model_config_file={config}", "--rest_api_port=1")
    assert result.returncode != 0
    assert "Error parsing text-format tensorflow.serving.ModelServerConfig" in result.stderr
    assert f"Invalid protobuf file: '{config}'" in result.stderr


# Every flag of tensorflow_model_server 2.21 (main.cc), with a value of its type.
UPSTREAM_FLAGS = {
    "port": "8500", "grpc_socket_path": "/tmp/tfs.sock", "rest_api_port": "8501",
    "rest_api_num_threads": "4", "rest_api_timeout_in_ms": "30000", "rest_api_enable_cors_support": "true",
    "enable_batching": "false", "allow_version_labels_for_unavailable_models": "true",
    "batching_parameters_file": "", "enable_per_model_batching_parameters": "false",
    "model_config_file": "", "model_config_file_poll_wait_seconds": "30", "model_name": "default",
    "model_base_path": "/models/default", "num_load_threads": "0", "num_unload_threads": "0",
    "max_num_load_retries": "5", "load_retry_interval_micros": "60000000",
    "file_system_poll_wait_seconds": "1", "flush_filesystem_caches": "true",
    "tensorflow_session_parallelism": "0", "tensorflow_session_config_file": "",
    "tensorflow_intra_op_parallelism": "1", "tensorflow_inter_op_parallelism": "1",
    "use_alts_credentials": "false", "ssl_config_file": "", "platform_config_file": "",
    "per_process_gpu_memory_fraction": "0.5", "saved_model_tags": "serve",
    "grpc_channel_arguments": "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb",
    "grpc_max_threads": "8", "enable_model_warmup": "true", "num_request_iterations_for_warmup": "3",
    "version": None, "monitoring_config_file": "", "remove_unused_fields_from_bundle_metagraph": "true",
    "prefer_tflite_model": "true", "num_tflite_pools": "2", "num_tflite_interpreters_per_pool": "2",
    "enable_signature_method_name_check": "true", "xla_cpu_compilation_enabled": "false",
    "xla_gpu_compilation_enabled": "false", "enable_profiler": "true",
    "thread_pool_factory_config_file": "", "mixed_precision": "bfloat16", "skip_initialize_tpu": "true",
    "enable_grpc_healthcheck_service": "true", "enable_serialization_as_tensor_content": "true",
}


@pytest.mark.parametrize("spelling", ["equals", "space"])
def test_every_upstream_flag_is_accepted(spelling: str) -> None:
    args: list[str] = []
    for name, value in UPSTREAM_FLAGS.items():
        if value is None:
            args.append(f"--{name}")
        elif spelling == "equals":
            args.append(f"--{name}={value}")
        elif value:  # argparse cannot tell an empty separate argument from a missing one
            args += [f"--{name}", value]
    flags = parse_flags(args)
    assert flags.grpc_socket_path == "/tmp/tfs.sock"
    assert flags.grpc_channel_arguments == "grpc.max_connection_age_ms=2000,grpc.lb_policy_name=grpclb"
    assert (flags.enable_signature_method_name_check, flags.prefer_tflite_model) == (True, True)
    assert (flags.num_request_iterations_for_warmup, flags.enable_model_warmup) == (3, True)
    assert (flags.model_config_file_poll_wait_seconds, flags.grpc_max_threads, flags.port) == (30, 8, 8500)
    assert flags.enable_grpc_healthcheck_service is True and flags.ssl_config_file == ""
    assert flags.tensorflow_intra_op_parallelism == 1 and flags.num_tflite_interpreters_per_pool == 2
    ignored = ignored_flag_messages(flags)
    assert "--per_process_gpu_memory_fraction=0.5 has no effect here: the server runs on CPU" in ignored
    assert len(ignored) == 5  # the no-op flags given non-default values above
    assert flags.allow_version_labels_for_unavailable_models is True


def test_no_op_flags_say_nothing_at_their_defaults() -> None:
    flags = parse_flags([])
    assert ignored_flag_messages(flags) == []
    assert flags.enable_signature_method_name_check is False and flags.prefer_tflite_model is False
    assert flags.model_config_file_poll_wait_seconds == 0
    assert {f.name for f in NO_OP_FLAGS}.isdisjoint(UPSTREAM_FLAGS.keys() - {
        "enable_per_model_batching_parameters",
        "num_load_threads", "num_unload_threads", "flush_filesystem_caches",
        "tensorflow_session_config_file", "use_alts_credentials", "platform_config_file",
        "per_process_gpu_memory_fraction", "remove_unused_fields_from_bundle_metagraph",
        "num_tflite_pools", "xla_cpu_compilation_enabled", "xla_gpu_compilation_enabled",
        "thread_pool_factory_config_file", "mixed_precision", "skip_initialize_tpu"})


@pytest.mark.parametrize("args", [["--model_config_file_poll_wait_seconds=-1"],
                                  ["--enable_signature_method_name_check=sometimes"],
                                  ["--num_request_iterations_for_warmup=many"]])
def test_bad_upstream_flag_values_exit_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_flags(args)
    assert exit_info.value.code == 2


def test_defaults_are_tensorflow_model_servers() -> None:
    """main.cc's defaults, whatever the environment says: gRPC on 8500, no REST, model `default`, no
    base path, no batching, 5 load retries a minute apart."""
    flags = parse_flags([])
    assert (flags.port, flags.rest_api_port) == (8500, 0)
    assert (flags.model_name, flags.model_base_path) == ("default", "")
    assert flags.enable_batching is False
    assert (flags.max_num_load_retries, flags.load_retry_interval_micros) == (5, 60_000_000)
    assert flags.rest_api_host == "127.0.0.1"
    assert flags.file_system_poll_wait_seconds == 1.0
    assert flags.rest_api_max_body_bytes == DEFAULT_MAX_BODY_BYTES == 32 * 1024 * 1024
    assert flags.rest_api_enable_cors_support is False and flags.enable_prometheus is False
    with pytest.raises(ConfigError, match="Both server_options.model_base_path and "
                       "server_options.model_config_file are empty!"):
        model_configs(flags)


def test_the_environment_changes_no_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MODEL_NAME", "other_model")
    monkeypatch.setenv("MODEL_BASE_PATH", str(tmp_path))
    monkeypatch.setenv("REST_API_PORT", "9123")
    flags = parse_flags([])
    assert (flags.rest_api_port, flags.model_name, flags.model_base_path) == (0, "default", "")
    flags = parse_flags([f"--model_base_path={tmp_path / 'm'}"])
    assert model_configs(flags) == [ModelConfig("default", tmp_path / "m")]


@pytest.mark.parametrize(("base_path", "expected"), [
    ("gs://bucket/models/m", "gs://bucket/models/m"), ("file:///srv/m", Path("/srv/m")),
    ("ram://m", "ram://m")])
def test_base_paths_may_be_uris(base_path: str, expected: object) -> None:
    assert model_configs(parse_flags([f"--model_base_path={base_path}"]))[0].base_path == expected


def test_a_relative_base_path_is_refused_as_tf_serving_refuses_it() -> None:
    with pytest.raises(ConfigError, match="Expected model default to have an absolute path or URI; "
                       "found: models/linear_model"):
        model_configs(parse_flags(["--model_base_path=models/linear_model"]))


def test_max_pending_requests_is_a_positive_flag() -> None:
    assert parse_flags([]).max_pending_requests == 1024
    assert parse_flags(["--max_pending_requests=3"]).max_pending_requests == 3
    with pytest.raises(SystemExit):
        parse_flags(["--max_pending_requests=0"])


@pytest.mark.parametrize(("args", "expected"), [
    (["--rest_api_enable_cors_support"], True),
    (["--rest_api_enable_cors_support=true"], True),
    (["--rest_api_enable_cors_support=false"], False),
    (["--rest_api_enable_cors_support=False"], False),
])
def test_boolean_flags(args: list[str], expected: bool) -> None:
    assert parse_flags(args).rest_api_enable_cors_support is expected


@pytest.mark.parametrize("args", [["--rest_api_enable_cors_support=maybe"], ["--rest_api_port=-1"],
                                  ["--rest_api_port=70000"], ["--rest_api"]])
def test_invalid_flag_values_exit_2(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_flags(args)
    assert exit_info.value.code == 2


def test_model_config_policies_and_labels() -> None:
    configs = parse_model_config_text("""
        model_config_list {
          config { name: 'a' base_path: '/models/a' model_platform: 'tensorflow'
                   model_version_policy { specific { versions: 43 versions: 42 } }
                   version_labels { key: 'stable' value: 42 } version_labels { key: 'canary' value: 43 } }
          config { name: 'b' base_path: 'gs://bucket/b' model_platform: 'tensorflow'
                   model_version_policy { latest { num_versions: 2 } } }
          config { name: 'c' base_path: '/c' model_platform: 'tensorflow' model_version_policy { all {} } }
          config { name: 'd' base_path: '/d' model_type: TENSORFLOW model_version_policy { latest {} } }
        }""")
    assert configs == [
        ModelConfig("a", Path("/models/a"), VersionPolicy("specific", versions=(42, 43)),
                    {"stable": 42, "canary": 43}),
        ModelConfig("b", "gs://bucket/b", VersionPolicy("latest", num_versions=2)),
        ModelConfig("c", Path("/c"), VersionPolicy("all")),
        ModelConfig("d", Path("/d"), VersionPolicy("latest", num_versions=1)),  # 0 counts as 1
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("model_config_list { config { name: 'a' } }", "empty base_path"),
    ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'pytorch' } }",
     "Model a requests unsupported platform pytorch"),
    ("model_config_list { config { name: 'a' base_path: '/a' nonsense: 1 } }",
     "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:56 : Message type "),
    ("model_config_list { config { base_path: '/a' } }", "empty name"),
    ("model_config_list { config { name: 'a' base_path: '/a' } }",
     r"Illegal setting neither ModelServerConfig::model_type \(deprecated\) nor "
     "ModelServerConfig::model_platform."),
    ("model_config_list { config { name: 'a' base_path: 'a' model_platform: 'tensorflow' } }",
     "Expected model a to have an absolute path or URI; found: a"),
])
def test_model_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_model_config_text(text)


def test_monitoring_config() -> None:
    parsed = parse_monitoring_config_text('prometheus_config { enable: true path: "/metrics" }')
    assert (parsed.enable, parsed.path) == (True, "/metrics")
    default = parse_monitoring_config_text("prometheus_config { enable: true }")
    assert (default.enable, default.path) == (True, "/monitoring/prometheus/metrics")
    assert parse_monitoring_config_text("").enable is False
    with pytest.raises(ConfigError):
        parse_monitoring_config_text("prometheus_config { enable: maybe }")


@pytest.mark.parametrize(("name", "version"), [
    ("1", 1), ("00000123", 123), ("9223372036854775807", 2**63 - 1), ("9223372036854775808", None),
    ("v1", None), ("0.1", None), ("temp-123", None), ("1_tmp", None), ("+1", None), (" 1", None), ("١", None),
])
def test_only_all_digit_names_are_versions(name: str, version: int | None) -> None:
    assert parse_version(name) == version


def test_list_versions_ignores_files_and_other_names(tmp_path: Path) -> None:
    for name in ("1", "0003", "v2", ".tmp-4", "5.0"):
        (tmp_path / name).mkdir()
    (tmp_path / "6").write_text("a file, not a version dir")
    assert version_dirs(tmp_path) == {1: tmp_path / "1", 3: tmp_path / "0003"}
    with pytest.raises(OSError):
        version_dirs(tmp_path / "missing")


def test_aspired_versions_per_policy() -> None:
    on_disk = {v: Path(str(v)) for v in (1, 2, 3, 10)}
    assert set(aspired_versions(on_disk, VersionPolicy("latest"))) == {10}
    assert set(aspired_versions(on_disk, VersionPolicy("latest", num_versions=2))) == {10, 3}
    assert set(aspired_versions(on_disk, VersionPolicy("all"))) == {1, 2, 3, 10}
    assert set(aspired_versions(on_disk, VersionPolicy("specific", versions=(2, 42)))) == {2}
