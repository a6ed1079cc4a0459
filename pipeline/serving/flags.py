"""Command-line flags of `python -m pipeline.serving`, and the configs they name.

Every flag of `tensorflow_model_server` 2.21 (its `main.cc`) is accepted with the same name and
meaning, as `--flag=value` or `--flag value`, booleans also bare `--flag`, so a TF Serving command
line, Docker `args:` list or upstream test works unchanged. Most are implemented; `NO_OP_FLAGS`
change nothing here, and `ignored_flag_messages` gives the one log line each says when set. Our own
additions are `--rest_api_host`, `--rest_api_max_body_bytes`, `--max_pending_requests`,
`--enable_prometheus` and the request logs' `--request_log_max_file_bytes` and
`--request_log_max_total_bytes`.
Unknown flags and bad values are an error (exit status 2), like absl flags.

Defaults are the binary's: `--port` 8500, `--rest_api_port` 0 (REST off), `--model_name` `default`,
no `--model_base_path` (an error without `--model_config_file`), `--enable_batching` false,
`--max_num_load_retries` 5 a minute apart; the project's own commands (the dashboard's embedded
server, `make serve`, the Docker image, `make bench`) pass what they want explicitly, and no
environment variable changes a default. `model_configs()` turns the flags into
`ModelConfig`s: one from `--model_name`/`--model_base_path`, or several from a
`--model_config_file` (parsed in `model_config.py`).

Nothing here imports TensorFlow's runtime, so `--help` and flag errors answer at once.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipeline.serving.model_config import (
    DEFAULT_PROMETHEUS_PATH,
    ConfigError,
    ModelConfig,
    MonitoringOptions,
    parse_batching_parameters_text,
    parse_monitoring_config_text,
    read_model_config_file,
    validate_configs,
)
from pipeline.serving.overload import DEFAULT_MAX_PENDING_REQUESTS
from pipeline.serving.storage import read_text, storage_path

if TYPE_CHECKING:
    from pipeline.serving.batching import BatchingOptions

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


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


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def _config_poll_seconds(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (read once) or more, got {text}")
    return value


@dataclass(frozen=True)
class NoOpFlag:
    """A `tensorflow_model_server` flag accepted for command-line compatibility that changes nothing
    here; `reason` is logged once at start-up when the flag is given a non-default value."""

    name: str
    type: Callable[[str], Any]
    default: Any
    reason: str


NO_OP_FLAGS: tuple[NoOpFlag, ...] = (
    NoOpFlag("enable_per_model_batching_parameters", _bool, False,
             "batching uses --batching_parameters_file for every model"),
    NoOpFlag("num_load_threads", int, 0, "each model loads its versions in its own thread"),
    NoOpFlag("num_unload_threads", int, 0, "unloaded versions are closed in one closing thread once "
             "their last in-flight request lets go"),
    NoOpFlag("flush_filesystem_caches", _bool, True, "there is no file system cache to flush"),
    NoOpFlag("tensorflow_session_config_file", str, "", "sessions use TensorFlow's default ConfigProto"),
    NoOpFlag("use_alts_credentials", _bool, False, "Google ALTS is not available"),
    NoOpFlag("platform_config_file", str, "", "only the tensorflow platform is served"),
    NoOpFlag("per_process_gpu_memory_fraction", float, 0.0, "the server runs on CPU"),
    NoOpFlag("remove_unused_fields_from_bundle_metagraph", _bool, False,
             "the MetaGraphDef is not kept after loading"),
    NoOpFlag("num_tflite_pools", int, 0, "one pool of interpreters per .tflite version"),
    NoOpFlag("xla_cpu_compilation_enabled", _bool, False, "XLA JIT is left as TensorFlow configures it"),
    NoOpFlag("xla_gpu_compilation_enabled", _bool, False, "the server runs on CPU"),
    NoOpFlag("thread_pool_factory_config_file", str, "", "thread pools are the server's own"),
    NoOpFlag("mixed_precision", str, "", "models run at the precision they were exported with"),
    NoOpFlag("skip_initialize_tpu", _bool, False, "there is no TPU"),
)
"""Upstream flags (tensorflow_model_server 2.21 main.cc) that have no effect here, and why."""


def build_parser() -> argparse.ArgumentParser:
    """The flag parser, with tensorflow_model_server's defaults.

    Every flag of `tensorflow_model_server` 2.21 is accepted, as `--flag=value` or `--flag value`
    (booleans also bare `--flag`); the ones with no effect here are `NO_OP_FLAGS`."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.serving",
        description="Serve SavedModel versions over the TensorFlow Serving REST API "
        "(a drop-in for tensorflow_model_server). See docs/serving.md.",
        allow_abbrev=False,
    )
    cpus = os.cpu_count() or 1

    def flag(name: str, default: bool, text: str) -> None:
        parser.add_argument(
            name, nargs="?", const=True, default=default, type=_bool, metavar="true|false", help=text
        )

    parser.add_argument("--port", type=_port, default=8500, metavar="PORT",
                        help="gRPC port; 0 disables gRPC (default %(default)s)")
    parser.add_argument("--grpc_socket_path", default="", metavar="PATH",
                        help="also serve gRPC on this UNIX socket, if given")
    parser.add_argument("--grpc_channel_arguments", default="", metavar="K=V,...",
                        help="gRPC server channel arguments, e.g. grpc.max_connection_age_ms=2000")
    parser.add_argument("--grpc_max_threads", type=_positive, default=4 * cpus, metavar="N",
                        help="most gRPC requests handled at once (default %(default)s)")
    flag("--enable_profiler", True,
         "serve TensorFlow's ProfilerService on the gRPC port, for TensorBoard's Capture profile "
         "(default true)")
    flag("--enable_grpc_healthcheck_service", False,
         "serve the standard gRPC health checking service (default false)")
    parser.add_argument("--ssl_config_file", default="", metavar="FILE",
                        help="SSLConfig text proto: serve gRPC over TLS")
    flag("--enable_serialization_as_tensor_content", False,
         "gRPC predict responses carry tensor_content bytes (default false)")
    parser.add_argument("--rest_api_port", type=_port, metavar="PORT", default=0,
                        help="REST API port; 0 (the default, as TF Serving) serves no REST API")
    parser.add_argument("--rest_api_host", default="127.0.0.1", metavar="HOST",
                        help="interface to bind; TF Serving binds every interface, we bind loopback "
                        "unless asked, e.g. 0.0.0.0 (default %(default)s)")
    parser.add_argument("--model_name", default="default", metavar="NAME",
                        help="name of the single served model (default %(default)s)")
    parser.add_argument("--model_base_path", default="", metavar="DIR",
                        help="absolute path or URI (gs://...) of the folder holding the version dirs "
                        "1/, 2/, ...; required without --model_config_file")
    parser.add_argument("--model_config_file", default="", metavar="FILE",
                        help="ModelServerConfig text proto (model_config_list with several models, "
                        "model_version_policy, version_labels); overrides --model_name/--model_base_path")
    parser.add_argument("--model_config_file_poll_wait_seconds", type=_config_poll_seconds, default=0.0,
                        metavar="SECONDS",
                        help="seconds between reads of --model_config_file, applying models added, "
                        "removed or changed; 0 reads it once (default %(default)s)")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0, metavar="SECONDS",
                        help="seconds between scans of each base path for new or deleted versions; "
                        "0 scans once at start-up (default %(default)s)")
    parser.add_argument("--rest_api_num_threads", type=int, default=4 * cpus, metavar="N",
                        help="worker threads running models (default 4 x CPUs = %(default)s)")
    parser.add_argument("--rest_api_timeout_in_ms", type=int, default=30000, metavar="MS",
                        help="per-request model run timeout, answered with 504 DEADLINE_EXCEEDED; "
                        "0 disables it (default %(default)s)")
    parser.add_argument("--max_pending_requests", type=_positive, default=DEFAULT_MAX_PENDING_REQUESTS,
                        metavar="N",
                        help="model requests (predict/classify/regress) accepted and not yet answered, "
                        "server-wide; past it a request is refused at once with 503 UNAVAILABLE "
                        "(project extension; default %(default)s)")
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
    flag("--enable_batching", False,
         "merge concurrent requests to one model version and signature into one model call "
         "(TF Serving's server-side batching, see docs/serving.md; default false, as TF Serving)")
    parser.add_argument("--batching_parameters_file", default="", metavar="FILE",
                        help="BatchingParameters text proto, e.g. max_batch_size { value: 128 } "
                        "batch_timeout_micros { value: 0 }; ignored with --enable_batching=false")
    flag("--enable_model_warmup", True,
         "replay assets.extra/tf_serving_warmup_requests before a "
         "version is AVAILABLE (default true)")
    parser.add_argument("--num_request_iterations_for_warmup", type=int, default=1, metavar="N",
                        help="times each warm-up request is replayed; used if > 0 (default 1)")
    flag("--allow_version_labels_for_unavailable_models", False,
         "a models.config label may name a version that is not AVAILABLE yet, if the label is new or "
         "unchanged (default false: such a label is refused, as TF Serving refuses it)")
    flag("--enable_signature_method_name_check", False,
         "classify/regress require the signature's method_name to be tensorflow/serving/classify "
         "or .../regress (default false, as TF Serving)")
    flag("--prefer_tflite_model", False,
         "serve a version folder's model.tflite instead of its saved_model.pb when both exist")
    parser.add_argument("--num_tflite_interpreters_per_pool", type=_positive, default=1, metavar="N",
                        help="TensorFlow Lite interpreters per version (default 1)")
    parser.add_argument("--saved_model_tags", default="serve", metavar="TAGS",
                        help="comma-separated tags of the MetaGraph to load (default serve)")
    parser.add_argument("--tensorflow_session_parallelism", type=int, default=0, metavar="N",
                        help="threads of TensorFlow's intra- and inter-op pools; 0 = automatic")
    parser.add_argument("--tensorflow_intra_op_parallelism", type=int, default=0, metavar="N",
                        help="threads that run one op; 0 = automatic (overrides the flag above)")
    parser.add_argument("--tensorflow_inter_op_parallelism", type=int, default=0, metavar="N",
                        help="ops run at once; 0 = automatic (overrides the flag above)")
    parser.add_argument("--request_log_max_file_bytes", type=_positive, default=64 * 1024 * 1024,
                        metavar="BYTES",
                        help="a model's request log (logging_config) starts a new file past this size "
                        "(project extension; default %(default)s = 64 MiB)")
    parser.add_argument("--request_log_max_total_bytes", type=int, default=0, metavar="BYTES",
                        help="the oldest request log files of a filename_prefix are removed past this "
                        "many bytes; 0 keeps every file (project extension; default %(default)s)")
    parser.add_argument("--max_num_load_retries", type=int, default=5, metavar="N",
                        help="extra attempts after a version fails to load (default %(default)s)")
    parser.add_argument("--load_retry_interval_micros", type=int, default=60_000_000, metavar="MICROS",
                        help="pause between load attempts (default %(default)s)")
    for noop in NO_OP_FLAGS:
        parser.add_argument(f"--{noop.name}", type=noop.type, default=noop.default,
                            nargs="?" if noop.type is _bool else None,
                            const=True if noop.type is _bool else None,
                            metavar="true|false" if noop.type is _bool else "VALUE",
                            help=f"accepted for compatibility, no effect: {noop.reason}")
    parser.add_argument("--version", action="store_true", help="print the server and TensorFlow versions")
    return parser


def ignored_flag_messages(flags: argparse.Namespace) -> list[str]:
    """One log line per no-op flag given a value other than its default, naming why it changes nothing."""
    return [f"--{noop.name}={getattr(flags, noop.name)} has no effect here: {noop.reason}"
            for noop in NO_OP_FLAGS if getattr(flags, noop.name) != noop.default]


def parse_flags(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse a command line; on an unknown or invalid flag print usage and exit with status 2."""
    return build_parser().parse_args(argv)


def model_configs(flags: argparse.Namespace) -> list[ModelConfig]:
    """The models to serve: from `--model_config_file` if given, else the single-model flags."""
    if flags.model_config_file:
        return read_model_config_file(flags.model_config_file)
    if not flags.model_base_path:
        raise ConfigError(
            "Both server_options.model_base_path and server_options.model_config_file are empty!")
    config = ModelConfig(name=flags.model_name, base_path=storage_path(flags.model_base_path))
    return validate_configs([config])


def monitoring_options(flags: argparse.Namespace) -> MonitoringOptions:
    """Prometheus export settings from `--monitoring_config_file` and `--enable_prometheus`."""
    options = MonitoringOptions(enable=flags.enable_prometheus)
    if flags.monitoring_config_file:
        parsed = parse_monitoring_config_text(read_text(storage_path(flags.monitoring_config_file)))
        if parsed.enable:
            options = parsed
    return options


def batching_options(flags: argparse.Namespace) -> BatchingOptions | None:
    """The batching scheduler options if `--enable_batching`, from
    `--batching_parameters_file` or the defaults of `BatchingOptions`; None without batching."""
    from pipeline.serving.batching import BatchingOptions

    if not flags.enable_batching:
        return None
    if not flags.batching_parameters_file:  # tensorflow_model_server names its pool so
        return BatchingOptions(thread_pool_name="model_server_batch_threads")
    return parse_batching_parameters_text(read_text(storage_path(flags.batching_parameters_file)))


