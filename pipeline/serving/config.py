"""Command-line flags of `python -m pipeline.serving` and the models it serves.

The flags mirror `tensorflow_model_server` (same names, same meaning, booleans written `--flag` or
`--flag=true|false`), so a TF Serving command line or Docker `args:` list works unchanged. Our own
additions are `--rest_api_host`, `--rest_api_max_body_bytes` and `--enable_prometheus`; one default
differs: `--enable_batching` is true here (false in TF Serving). Unknown flags are an error (exit
status 2), like absl flags.

`model_configs()` turns the flags into `ModelConfig`s: one from `--model_name`/`--model_base_path`,
or several from a `--model_config_file` (a `ModelServerConfig` text proto, parsed with the official
`tensorflow_serving.config.model_server_config_pb2` and `google.protobuf.text_format`).

Nothing here imports TensorFlow's runtime, so `--help` and flag errors answer at once.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pipeline import config as project

if TYPE_CHECKING:
    from pipeline.serving.batching import BatchingOptions

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


class ConfigError(ValueError):
    """A models.config or monitoring config that cannot be served; the message is for the user."""


@dataclass(frozen=True)
class VersionPolicy:
    """Which on-disk versions are aspired (`model_version_policy` of a ModelConfig)."""

    kind: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def __str__(self) -> str:
        if self.kind == "latest":
            return f"latest {self.num_versions}"
        return "all" if self.kind == "all" else f"specific {list(self.versions)}"


@dataclass(frozen=True)
class ModelConfig:
    """One served model: its name, the parent directory of its version dirs, policy and labels."""

    name: str
    base_path: Path
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitoringOptions:
    """Where Prometheus metrics are exported, if at all."""

    enable: bool = False
    path: str = DEFAULT_PROMETHEUS_PATH


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {value}")
    return value


def _rest_port(text: str) -> int:
    value = _port(text)
    if value == 0:
        raise argparse.ArgumentTypeError("the REST API is the only API served: give a port from 1 to 65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The flag parser; `parse_flags` is the only caller outside tests."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.serving",
        description="Serve SavedModel versions over the TensorFlow Serving REST API "
        "(a drop-in for tensorflow_model_server's REST port). See docs/serving.md.",
        allow_abbrev=False,
    )

    def flag(name: str, default: bool, text: str) -> None:
        parser.add_argument(
            name, nargs="?", const=True, default=default, type=_bool, metavar="true|false", help=text
        )

    parser.add_argument("--port", type=_port, default=project.GRPC_PORT, metavar="PORT",
                        help="gRPC port, accepted for command-line compatibility; gRPC is not served yet "
                        "(default %(default)s)")
    parser.add_argument("--rest_api_port", type=_rest_port, metavar="PORT", default=project.REST_PORT,
                        help="REST API port (default %(default)s)")
    parser.add_argument("--rest_api_host", default="127.0.0.1", metavar="HOST",
                        help="interface to bind; TF Serving binds every interface, we bind loopback "
                        "unless asked, e.g. 0.0.0.0 (default %(default)s)")
    parser.add_argument("--model_name", default=project.MODEL_NAME, metavar="NAME",
                        help="name of the single served model (default %(default)s)")
    parser.add_argument("--model_base_path", default=str(project.MODEL_BASE_PATH), metavar="DIR",
                        help="directory holding the version dirs 1/, 2/, ... (default %(default)s)")
    parser.add_argument("--model_config_file", default="", metavar="FILE",
                        help="ModelServerConfig text proto (model_config_list with several models, "
                        "model_version_policy, version_labels); overrides --model_name/--model_base_path")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0, metavar="SECONDS",
                        help="seconds between scans of each base path for new or deleted versions; "
                        "0 scans once at start-up (default %(default)s)")
    parser.add_argument("--rest_api_num_threads", type=int, default=4 * (os.cpu_count() or 1), metavar="N",
                        help="worker threads running models (default 4 x CPUs = %(default)s)")
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=30000, metavar="MS",
                        help="per-request model run timeout, answered with 504 DEADLINE_EXCEEDED; "
                        "0 disables it (default %(default)s)")
    flag("--rest_api_enable_cors_support", False,
         "add Access-Control-Allow-* headers to every /v1 response (default false)")
    parser.add_argument("--rest_api_max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                        metavar="BYTES",
                        help="largest accepted request body (after gzip decoding); larger ones get "
                        "413 with a JSON error (default %(default)s = 32 MiB)")
    parser.add_argument("--monitoring_config_file", default="", metavar="FILE",
                        help="MonitoringConfig text proto, e.g. prometheus_config { enable: true }")
    flag("--enable_prometheus", False,
         f"export Prometheus metrics at {DEFAULT_PROMETHEUS_PATH} (default false)")
    flag("--enable_batching", True,
         "merge concurrent requests to one model version and signature into one model call "
         "(TF Serving's server-side batching; default true here, false in TF Serving; a lone request "
         "runs at once, see docs/serving.md). --enable_batching=false turns it off")
    parser.add_argument("--batching_parameters_file", default="", metavar="FILE",
                        help="BatchingParameters text proto, e.g. max_batch_size { value: 128 } "
                        "batch_timeout_micros { value: 0 }; ignored with --enable_batching=false")
    flag("--enable_model_warmup", True,
         "run each signature once before a version is AVAILABLE (default true)")
    parser.add_argument("--max_num_load_retries", type=int, default=0, metavar="N",
                        help="extra attempts after a version fails to load (TF Serving: 5; "
                        "default %(default)s, since exports here are written atomically)")
    parser.add_argument("--load_retry_interval_micros", type=int, default=60_000_000, metavar="MICROS",
                        help="pause between load attempts (default %(default)s)")
    parser.add_argument("--version", action="store_true", help="print the server and TensorFlow versions")
    return parser


def parse_flags(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a command line; on an unknown or invalid flag print usage and exit with status 2."""
    return build_parser().parse_args(argv)


def model_configs(flags: argparse.Namespace) -> list[ModelConfig]:
    """The models to serve: from `--model_config_file` if given, else the single-model flags."""
    if flags.model_config_file:
        return parse_model_config_text(Path(flags.model_config_file).read_text())
    if not flags.model_base_path:
        raise ConfigError(
            "Both server_options.model_base_path and server_options.model_config_file are empty!")
    return [ModelConfig(name=flags.model_name, base_path=Path(flags.model_base_path))]


def parse_model_config_text(text: str) -> list[ModelConfig]:
    """Parse a `ModelServerConfig` text proto into ModelConfigs; raise ConfigError when unservable."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    message = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"Invalid model config: {error}") from error
    if message.WhichOneof("config") == "custom_model_config":
        raise ConfigError("custom_model_config is not supported; use model_config_list")
    result: list[ModelConfig] = []
    for entry in message.model_config_list.config:
        if not entry.name:
            raise ConfigError("A model config has an empty name")
        if not entry.base_path:
            raise ConfigError(f"Model {entry.name} has an empty base_path")
        if entry.model_platform not in ("", "tensorflow"):
            raise ConfigError(f"Model {entry.name}: model_platform {entry.model_platform!r} is not supported")
        if any(existing.name == entry.name for existing in result):
            raise ConfigError(f"Illegal to list model {entry.name} multiple times in config list")
        result.append(ModelConfig(
            name=entry.name,
            base_path=Path(entry.base_path),
            policy=_policy(entry.model_version_policy),
            labels=dict(entry.version_labels),
        ))
    return result


def _policy(proto) -> VersionPolicy:
    kind = proto.WhichOneof("policy_choice")
    if kind == "all":
        return VersionPolicy(kind="all")
    if kind == "specific":
        if not proto.specific.versions:
            raise ConfigError("model_version_policy specific needs at least one version")
        return VersionPolicy(kind="specific", versions=tuple(sorted(set(proto.specific.versions))))
    # TF Serving treats num_versions 0 (the proto default) as 1.
    return VersionPolicy(kind="latest", num_versions=max(1, proto.latest.num_versions))


def monitoring_options(flags: argparse.Namespace) -> MonitoringOptions:
    """Prometheus export settings from `--monitoring_config_file` and `--enable_prometheus`."""
    options = MonitoringOptions(enable=flags.enable_prometheus)
    if flags.monitoring_config_file:
        parsed = parse_monitoring_config_text(Path(flags.monitoring_config_file).read_text())
        if parsed.enable:
            options = parsed
    return options


def parse_monitoring_config_text(text: str) -> MonitoringOptions:
    """Parse `prometheus_config { enable: true path: "..." }` (a MonitoringConfig text proto)."""
    from google.protobuf import text_format

    message = _monitoring_config_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"Invalid monitoring config: {error}") from error
    prometheus = message.prometheus_config
    path = prometheus.path or DEFAULT_PROMETHEUS_PATH
    if not path.startswith("/"):
        raise ConfigError(f"Prometheus path must start with '/': {path!r}")
    return MonitoringOptions(enable=prometheus.enable, path=path)


def batching_options(flags: argparse.Namespace) -> BatchingOptions | None:
    """The batching scheduler options if `--enable_batching` (the default), from
    `--batching_parameters_file` or the defaults of `BatchingOptions`; None without batching."""
    from pipeline.serving.batching import BatchingOptions

    if not flags.enable_batching:
        return None
    if not flags.batching_parameters_file:
        return BatchingOptions()
    return parse_batching_parameters_text(Path(flags.batching_parameters_file).read_text())


def parse_batching_parameters_text(text: str) -> BatchingOptions:
    """Parse a `BatchingParameters` text proto (TF Serving's --batching_parameters_file) into options.

    Unset fields keep the defaults of `BatchingOptions`. `thread_pool_name`, `pad_variable_length_inputs`,
    `enable_large_batch_splitting` and `max_execution_batch_size` are accepted and have no effect
    (requests whose shapes differ run in separate batches; larger-than-max requests run alone).
    """
    from google.protobuf import text_format

    from pipeline.serving.batching import BatchingOptions

    message = _batching_parameters_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"Invalid batching parameters: {error}") from error
    defaults = BatchingOptions()
    fields = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads")
    options = BatchingOptions(
        **{name: getattr(message, name).value if message.HasField(name) else getattr(defaults, name)
           for name in fields},
        allowed_batch_sizes=tuple(message.allowed_batch_sizes),
    )
    try:
        options.validate()
    except ValueError as error:
        raise ConfigError(f"Invalid batching parameters: {error}") from error
    return options


def _batching_parameters_class():
    """`BatchingParameters` of TF Serving's `session_bundle_config.proto`, built from its fields.

    tensorflow-serving-api ships no `session_bundle_config_pb2`; the message is rebuilt here (as
    upstream declares it: Int64Value/StringValue/BoolValue wrappers) so protobuf parses the text.
    """
    try:
        from tensorflow_serving.servables.tensorflow import session_bundle_config_pb2

        return session_bundle_config_pb2.BatchingParameters
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    field = descriptor_pb2.FieldDescriptorProto
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving", syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = proto.message_type.add(name="BatchingParameters")
    wrapped = [("max_batch_size", 1, "Int64Value"), ("batch_timeout_micros", 2, "Int64Value"),
               ("max_enqueued_batches", 3, "Int64Value"), ("num_batch_threads", 4, "Int64Value"),
               ("thread_pool_name", 5, "StringValue"), ("enable_large_batch_splitting", 8, "BoolValue"),
               ("max_execution_batch_size", 9, "Int64Value")]
    for name, number, wrapper in wrapped:
        message.field.add(name=name, number=number, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
                          type_name=f".google.protobuf.{wrapper}")
    message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED)
    message.field.add(name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL,
                      label=field.LABEL_OPTIONAL)
    pool.Add(proto)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.GetMessageClass(descriptor)


def _monitoring_config_class():
    """`MonitoringConfig` from tensorflow-serving-api, or the same message built from its .proto.

    The PyPI package ships no `monitoring_config_pb2`; upstream's
    `tensorflow_serving/config/monitoring_config.proto` has two small messages, rebuilt here so the
    text format is parsed by protobuf itself rather than by hand.
    """
    try:
        from tensorflow_serving.config import monitoring_config_pb2

        return monitoring_config_pb2.MonitoringConfig
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    proto = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto", package="tensorflow.serving",
        syntax="proto3",
    )
    prometheus = proto.message_type.add(name="PrometheusConfig")
    prometheus.field.add(name="enable", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    prometheus.field.add(name="path", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    monitoring = proto.message_type.add(name="MonitoringConfig")
    monitoring.field.add(name="prometheus_config", number=1,
                         type=descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
                         type_name=".tensorflow.serving.PrometheusConfig",
                         label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.MonitoringConfig"))
