"""`python -m pipeline.serving [flags]`: serve SavedModel versions over TF Serving's REST API.

Start-up order: parse flags (errors exit 2 before TensorFlow is imported), build the manager, try
the versions already on disk (missing or empty base paths do not block), then open the port and
serve until SIGINT/SIGTERM. Exit status 1 for an unusable models.config or monitoring config (the
message is TF Serving's: `Error parsing text-format tensorflow.serving.ModelServerConfig: ...`).
With `--model_config_file_poll_wait_seconds` > 0 the models.config is re-read while serving
(`config_poll.py`). Flags that have no effect here are logged once each.

Once the first versions are loaded, and after each later load, everything alive is frozen out of the
garbage collector's reach (`gc.freeze`): full collections of a process holding TensorFlow took
130-280 ms, every few seconds under load, and were the server's p99 latency.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import metadata

from pipeline.serving.flags import (
    batching_options,
    ignored_flag_messages,
    model_configs,
    monitoring_options,
    parse_flags,
)
from pipeline.serving.model_config import ConfigError

log = logging.getLogger("pipeline.serving")


class StartupError(Exception):
    """A part of the server could not start; what started before it is cleaned up, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server; returns the process exit status. Whatever fails at start-up (a model config,
    the gRPC port, the REST port), everything started before it is stopped again before returning:
    polling threads, the config poller, worker pools, the gRPC server and its Unix socket file."""
    flags = parse_flags(argv)
    if flags.version:
        print("TensorFlow ModelServer: pipeline.serving (TensorFlow Serving REST API, embedded)")
        print(f"TensorFlow Library: {metadata.version('tensorflow')}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        configs = model_configs(flags)
        monitoring = monitoring_options(flags)
        batching = batching_options(flags)
    except (ConfigError, OSError) as error:
        log.error("Failed to start server. Error: %s", error)
        return 1
    if not (flags.rest_api_port or flags.port or flags.grpc_socket_path):
        log.error("Failed to start server. Error: nothing to serve: --port and --rest_api_port are both 0 "
                  "and there is no --grpc_socket_path")
        return 1
    for message in ignored_flag_messages(flags):
        log.info("%s", message)
    with contextlib.ExitStack() as started:  # stops what started, in reverse order, however we leave
        try:
            return _serve(flags, configs, monitoring, batching, started)
        except StartupError as error:
            log.error("%s", error)
            return 1


def _serve(flags, configs, monitoring, batching, started: contextlib.ExitStack) -> int:
    """Start everything (each part registered in `started` to be stopped), serve until asked to
    stop, return the exit status; StartupError if a part cannot start."""
    from pipeline.tf_env import quiet_tensorflow_logs

    quiet_tensorflow_logs()
    import uvicorn

    from pipeline.serving import session_callable
    from pipeline.serving.batching import BatchListeners, BatchScheduler
    from pipeline.serving.dataplane import DataPlane
    from pipeline.serving.manager import ServableManager
    from pipeline.serving.metrics import ServerMetrics
    from pipeline.serving.overload import Admission
    from pipeline.serving.request_log import LogOptions
    from pipeline.serving.request_logs import RequestLogs
    from pipeline.serving.rest.app import HttpOptions, RestApi
    from pipeline.serving.rest.uvicorn_protocol import http_protocol
    from pipeline.serving.servable import Servable, ServableOptions

    log.info("%s", session_callable.status())
    metrics = None
    if monitoring.enable:
        metrics = ServerMetrics(batching=batching is not None, known_model=lambda name: manager.serves(name),
                                thread_pool_name=batching.thread_pool_name if batching is not None else "")
    scheduler = None
    if batching is not None:
        listeners = BatchListeners() if metrics is None else BatchListeners(
            on_batch=metrics.record_batch, on_fallback=metrics.record_batch_fallback,
            on_drop=metrics.record_deadline_drop)
        scheduler = BatchScheduler(batching, listeners)
        log.info("Batching enabled: %s", batching)
    else:
        log.info("Batching disabled (--enable_batching=false): each request runs as its own model call")
    request_logs = RequestLogs(LogOptions(max_file_bytes=flags.request_log_max_file_bytes,
                                          max_total_bytes=max(0, flags.request_log_max_total_bytes)),
                               on_outcome=metrics.record_request_log if metrics is not None else None)
    serving = threading.Event()  # set once the versions present at start-up were tried
    manager = ServableManager(
        configs,
        loader=functools.partial(
            Servable.load, options=ServableOptions.from_flags(flags), batching=scheduler, observer=metrics),
        poll_wait_seconds=flags.file_system_poll_wait_seconds,
        max_load_retries=flags.max_num_load_retries,
        load_retry_interval_seconds=flags.load_retry_interval_micros / 1e6,
        on_load=functools.partial(_loaded, serving),
        on_close=functools.partial(_closed, serving),
        allow_unavailable_labels=flags.allow_version_labels_for_unavailable_models,
        on_config=request_logs.apply,  # each model's logging_config, at start-up and every reload
    )
    for config in configs:
        log.info("Serving model %s from base path %s (policy %s)",
                 config.name, config.base_path, config.policy)
    started.callback(manager.stop)
    started.callback(request_logs.close)  # after the front ends stop: what is queued reaches the disk
    manager.start()
    manager.enforce_label_rule()  # TF Serving would not start; here the label is not applied (logged)
    _settle_heap()
    serving.set()
    from pipeline.serving.config_poll import ModelConfigPoller

    config_poller = ModelConfigPoller(flags.model_config_file, manager,
                                      flags.model_config_file_poll_wait_seconds, configs)
    if flags.model_config_file:
        started.callback(config_poller.stop)
        config_poller.start()

    timeout = flags.rest_api_timeout_in_ms / 1000 if flags.rest_api_timeout_in_ms > 0 else None
    admission = Admission(flags.max_pending_requests)
    if metrics is not None:
        metrics.watch(lambda: admission.pending,
                      (lambda: scheduler.running_calls) if scheduler is not None else None,
                      (lambda: scheduler.queued_tasks) if scheduler is not None else None)
    # the one request path (request logging included); REST and gRPC are codecs on it
    plane = DataPlane(manager, metrics, admission, request_logs)
    api = RestApi(plane, HttpOptions(
        enable_cors=flags.rest_api_enable_cors_support,
        max_body_bytes=flags.rest_api_max_body_bytes,
        timeout_seconds=timeout,
        num_threads=max(1, flags.rest_api_num_threads),
        metrics_path=monitoring.path if monitoring.enable else None,
    ))
    started.callback(api.close)
    log.info("At most %d model requests pending (--max_pending_requests); more are answered 503",
             flags.max_pending_requests)

    grpc_server = _start_grpc(flags, plane)
    if grpc_server is not None:
        started.callback(grpc_server.stop)
    from pipeline.lifeline import watch_parent

    if not flags.rest_api_port:  # TF Serving's default: gRPC only
        log.info("REST API is off (--rest_api_port=0)")
        _wait_for_stop(watch_parent)
        return 0

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started:
                log.info("Exporting HTTP/REST API at:%s:%d ...", flags.rest_api_host, flags.rest_api_port)
                if monitoring.enable:
                    log.info("Prometheus metrics at %s", monitoring.path)

    server = Server(uvicorn.Config(
        api, host=flags.rest_api_host, port=flags.rest_api_port, http=http_protocol(), loop="uvloop",
        access_log=False, log_level="warning", lifespan="off", proxy_headers=False,
    ))
    watch_parent(lambda: setattr(server, "should_exit", True))  # embedded: exit with the dashboard
    # uvicorn re-raises a SIGTERM once it has shut down: with the default handler the process would
    # end there, before the cleanup (queued request logs written, versions unloaded); this one
    # ends `server.run()` with SystemExit(0), and the ExitStack cleans up
    signal.signal(signal.SIGTERM, _exit_after_sigterm)
    try:
        server.run()
    except SystemExit as stop:  # SIGTERM (0), or uvicorn could not bind the REST port (1, it logged why)
        return 0 if stop.code in (0, None) and server.started else 1
    return 0 if server.started else 1


def _exit_after_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _wait_for_stop(watch_parent) -> None:
    """Block until SIGINT or SIGTERM (or, when embedded, the parent process goes away)."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    watch_parent(stop.set)
    while not stop.wait(1.0):
        pass


def _start_grpc(flags, plane):
    """The gRPC front end on --port (and --grpc_socket_path), sharing the REST side's data plane
    (manager, metrics, admission); None when both are off. HandleReloadConfigRequest applies configs
    through `ServableManager.apply_config`. A port that cannot be bound, or a bad SSL config, is a
    StartupError (`Failed to BuildAndStart gRPC server: ...`, exit status 1), as
    tensorflow_model_server ends; the server cleans up what it had bound (its socket file too)."""
    from pipeline.serving.grpc.services import GrpcCore
    from pipeline.serving.grpc.transport import GrpcConfigError, GrpcOptions, GrpcServer

    options = GrpcOptions(host=flags.rest_api_host, port=flags.port, socket_path=flags.grpc_socket_path,
                          channel_arguments=flags.grpc_channel_arguments,
                          enable_health=flags.enable_grpc_healthcheck_service,
                          ssl_config_file=flags.ssl_config_file, enable_profiler=flags.enable_profiler)
    if not options.enabled:
        log.info("gRPC is off (--port=0 and no --grpc_socket_path)")
        return None
    manager = plane.manager
    core = GrpcCore(plane=plane, num_threads=max(1, flags.grpc_max_threads),
                    tensor_content=flags.enable_serialization_as_tensor_content,
                    reload_config=manager.apply_config, ready=manager.all_available)
    try:
        server = GrpcServer(core, options)
        server.start()
    except (GrpcConfigError, OSError) as error:
        raise StartupError(f"Failed to BuildAndStart gRPC server: {error}") from None
    log.info("Running gRPC ModelServer at %s ...", ", ".join(server.addresses))
    return server


def _loaded(serving: threading.Event, name: str, version: int, ok: bool) -> None:
    """The manager's load listener: a version loaded while serving settles the heap."""
    if ok and serving.is_set():
        _settle_heap()


def _closed(serving: threading.Event, name: str, version: int) -> None:
    """The manager's close listener: an unloaded version was closed; its Python objects (graph
    cycles) are collected now and the freed memory handed back to the system."""
    if serving.is_set():
        _settle_heap()


_HEAP_LOCK = threading.Lock()


def _settle_heap() -> None:
    """Collect once (closed versions' cycles too), give freed heap pages back to the system
    (`malloc_trim`, glibc), then freeze what is alive so that later collections only scan objects
    made since. One pause per version change, in the polling or closing thread."""
    with _HEAP_LOCK:
        gc.unfreeze()
        gc.collect()
        _trim_heap()
        gc.freeze()


def _trim_heap() -> None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: the allocator keeps its own policy
        pass


if __name__ == "__main__":
    sys.exit(main())
