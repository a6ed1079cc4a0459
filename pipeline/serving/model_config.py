"""What the server serves and how: models.config, monitoring and batching configs as values.

`ModelConfig` (name, base path, `VersionPolicy`, version labels) is what the source and manager
work from; `parse_model_config_text` reads a `ModelServerConfig` text proto with the official
`tensorflow_serving.config.model_server_config_pb2` and `google.protobuf.text_format`, as
`--model_config_file` gives it. The monitoring (`MonitoringConfig`) and batching
(`BatchingParameters`) text protos are parsed the same way; tensorflow-serving-api ships no Python
module for those two, so their messages are rebuilt from upstream's .proto fields below.
A model's `logging_config` is kept as a `LoggingConfig`, for the request logs (`request_logs.py`).

Every unservable config raises `ConfigError` with a message for the user. No flags here (see
`flags.py`) and no TensorFlow runtime: parsing answers at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pipeline.serving.storage import StoragePath, is_absolute, read_text, storage_path

if TYPE_CHECKING:
    from pipeline.serving.batching import BatchingOptions

DEFAULT_PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


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
class LoggingConfig:
    """A model's `logging_config` as written (TF Serving's `LoggingConfig`): which collector, where,
    and the share of requests logged. Parsed as it is; `request_log.py` decides whether it can be
    honoured (a refusal there leaves the model's other settings working)."""

    collector_type: str = ""
    """`log_collector_config.type` (only `file` is served)."""
    filename_prefix: str = ""
    sampling_rate: float = 0.0
    """`sampling_config.sampling_rate`: each request is logged with this probability (0: none)."""
    custom: bool = False
    """Whether `custom_logging_config` is set (not served)."""


@dataclass(frozen=True)
class ModelConfig:
    """One served model: its name, the parent directory of its version dirs, policy, labels and
    request logging."""

    name: str
    base_path: StoragePath
    """A local `Path`, or a URI (`gs://...`) read through TensorFlow's file systems (`storage.py`)."""
    policy: VersionPolicy = VersionPolicy()
    labels: dict[str, int] = field(default_factory=dict)
    logging: LoggingConfig | None = None
    """The model's `logging_config`, None when it has none."""


@dataclass(frozen=True)
class MonitoringOptions:
    """Where Prometheus metrics are exported, if at all."""

    enable: bool = False
    path: str = DEFAULT_PROMETHEUS_PATH


MODEL_SERVER_CONFIG = "tensorflow.serving.ModelServerConfig"


def read_model_config_file(path: StoragePath) -> list[ModelConfig]:
    """The models of a models.config file (a local path or a URI such as `gs://...`); ConfigError
    (TF Serving's texts) if unreadable or invalid."""
    try:
        text = read_text(path)
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"Invalid protobuf file: '{path}': {error}") from error
    try:
        return parse_model_config_text(text)
    except ConfigError as error:
        raise ConfigError(f"{error}\nInvalid protobuf file: '{path}'") from error


def parse_model_config_text(text: str) -> list[ModelConfig]:
    """Parse a `ModelServerConfig` text proto into ModelConfigs; raise ConfigError when unservable.

    A text that is not a ModelServerConfig is reported as protobuf's C++ parser does (TF Serving's
    own tests look for it): `Error parsing text-format tensorflow.serving.ModelServerConfig: 3:5: ...`.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    message = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"Error parsing text-format {MODEL_SERVER_CONFIG}: {error}") from error
    return configs_from_proto(message)


def configs_from_proto(message) -> list[ModelConfig]:
    """The ModelConfigs of a `ModelServerConfig` message (e.g. a gRPC ReloadConfigRequest's config),
    validated as TF Serving's ServerCore does; raise ConfigError when unservable. An empty config
    (no `config` oneof set) is an empty list."""
    if message.WhichOneof("config") == "custom_model_config":
        raise ConfigError("custom_model_config is not supported; use model_config_list")
    result: list[ModelConfig] = []
    for entry in message.model_config_list.config:
        if not entry.name:
            raise ConfigError("A model config has an empty name")
        if not entry.base_path:
            raise ConfigError(f"Model {entry.name} has an empty base_path")
        platform = _platform(entry)
        if platform != TENSORFLOW_PLATFORM:
            raise ConfigError(f"Model {entry.name} requests unsupported platform {platform}")
        if any(existing.name == entry.name for existing in result):
            raise ConfigError(f"Illegal to list model {entry.name} multiple times in config list")
        result.append(ModelConfig(
            name=entry.name,
            base_path=storage_path(entry.base_path),
            policy=_policy(entry.model_version_policy),
            labels=dict(entry.version_labels),
            logging=_logging(entry),
        ))
    return validate_configs(result)


def _logging(entry) -> LoggingConfig | None:
    if not entry.HasField("logging_config"):
        return None
    proto = entry.logging_config
    return LoggingConfig(collector_type=proto.log_collector_config.type,
                         filename_prefix=proto.log_collector_config.filename_prefix,
                         sampling_rate=proto.sampling_config.sampling_rate,
                         custom=proto.HasField("custom_logging_config"))


TENSORFLOW_PLATFORM = "tensorflow"


def _platform(entry) -> str:
    """The model's platform as TF Serving's ServerCore reads it (`model_platform`, or the deprecated
    `model_type` TENSORFLOW); ConfigError with its words when neither or both are set."""
    model_type = getattr(entry, "model_type", 0)
    if model_type:
        if entry.model_platform:
            raise ConfigError("Illegal setting both ModelServerConfig::model_type (deprecated) and "
                              "ModelServerConfig::model_platform.")
        if model_type != 1:  # ModelType.TENSORFLOW
            raise ConfigError(f"ModelServerConfig::model_type choice {model_type} not supported.")
        return TENSORFLOW_PLATFORM
    if not entry.model_platform:
        raise ConfigError("Illegal setting neither ModelServerConfig::model_type (deprecated) nor "
                          "ModelServerConfig::model_platform.")
    return entry.model_platform


def validate_configs(configs: list[ModelConfig]) -> list[ModelConfig]:
    """`configs`, or ConfigError as TF Serving's ServerCore refuses them: every base path must be an
    absolute path or a URI."""
    for config in configs:
        if not is_absolute(config.base_path):
            raise ConfigError(f"Expected model {config.name} to have an absolute path or URI; found: "
                              f"{config.base_path}")
    return configs


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


def parse_batching_parameters_text(text: str) -> BatchingOptions:
    """Parse a `BatchingParameters` text proto (TF Serving's --batching_parameters_file) into options.

    Unset fields keep the defaults of `BatchingOptions` (TF Serving's). `thread_pool_name` only
    labels the queuing metric (one pool of `num_batch_threads` serves every model, as upstream's
    shared scheduler).
    """
    from google.protobuf import text_format

    from pipeline.serving.batching import BatchingOptions

    message = _batching_parameters_class()()
    try:
        text_format.Parse(text, message)
    except text_format.ParseError as error:
        raise ConfigError(f"Invalid batching parameters: {error}") from error
    defaults = BatchingOptions()
    fields = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
              "enable_large_batch_splitting", "max_execution_batch_size")
    options = BatchingOptions(
        **{name: getattr(message, name).value if message.HasField(name) else getattr(defaults, name)
           for name in fields},
        allowed_batch_sizes=tuple(message.allowed_batch_sizes),
        pad_variable_length_inputs=message.pad_variable_length_inputs,
        thread_pool_name=(message.thread_pool_name.value if message.HasField("thread_pool_name")
                          else defaults.thread_pool_name),
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
