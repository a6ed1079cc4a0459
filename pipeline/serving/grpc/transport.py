"""The gRPC server process side: ports, channel arguments, TLS, health checks, reflection.

As `tensorflow_model_server` does it (`server.cc`):
- `--port` on the REST host (`--rest_api_host`, 127.0.0.1 by default here; upstream binds every
  interface), 0 turns the TCP port off; `--grpc_socket_path` adds a Unix socket;
- message size limits of INT_MAX (2 GiB) both ways (grpcio's default receive limit is 4 MiB);
- `--grpc_channel_arguments=k=v,...`: each value that parses as a 32-bit int is passed as an int,
  else as a string; they are applied after ours, so they may override them;
- `--grpc_max_threads`: the worker threads that run requests (upstream: the server's thread quota);
- `--ssl_config_file`: an `SSLConfig` text proto (server_key, server_cert, custom_ca, client_verify);
- `--enable_grpc_healthcheck_service`: grpc.health.v1 for "" and both services, by full name and
  without the `tensorflow.serving.` prefix: NOT_SERVING until every configured model has a version
  AVAILABLE (TF Serving starts its servers only then, so SERVING means loaded), SERVING from then
  on, NOT_SERVING once shutting down;
- server reflection is always on; compressed (gzip, deflate) requests are accepted;
- a request that is not a valid proto is INVALID_ARGUMENT (grpcio would say INTERNAL).

The server runs on its own asyncio loop in a daemon thread (`GrpcServer.start` returns once the ports
are bound or have failed), beside uvicorn's loop that serves REST in the main thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection
from tensorflow_serving.apis import model_service_pb2, prediction_service_pb2

from pipeline.serving.grpc.profiler import ProfilerForwarder
from pipeline.serving.grpc.services import Front, GrpcCore, ModelServicer, PredictionServicer, service_names

log = logging.getLogger(__name__)

INT32_MAX = 2**31 - 1
READY_POLL_SECONDS = 0.1
SERVICE_PREFIX = "tensorflow.serving."


class GrpcConfigError(ValueError):
    """A gRPC flag or file the server cannot use (bad SSL config, bad channel argument)."""


@dataclass(frozen=True)
class GrpcOptions:
    """The gRPC transport flags."""

    host: str = "127.0.0.1"
    port: int = 8500
    socket_path: str = ""
    channel_arguments: str = ""
    enable_health: bool = False
    ssl_config_file: str = ""
    enable_profiler: bool = True

    @property
    def enabled(self) -> bool:
        return bool(self.port or self.socket_path)


def parse_channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """`k=v,k2=v2` as grpc options, values that are 32-bit ints as ints (upstream's rule)."""
    options: list[tuple[str, int | str]] = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, _, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not key:
            raise GrpcConfigError(f"Invalid gRPC channel argument: {item!r} (expected key=value)")
        try:
            number = int(value)
        except ValueError:
            options.append((key, value))
        else:
            options.append((key, number) if -(2**31) <= number <= INT32_MAX else (key, value))
    return options


def server_options(options: GrpcOptions) -> list[tuple[str, int | str]]:
    """Our defaults (2 GiB messages both ways), then the user's channel arguments."""
    return [("grpc.max_receive_message_length", INT32_MAX), ("grpc.max_send_message_length", INT32_MAX),
            *parse_channel_arguments(options.channel_arguments)]


def ssl_credentials(path: str) -> grpc.ServerCredentials:
    """Server credentials from an `SSLConfig` text proto, as upstream builds them."""
    from google.protobuf import text_format

    config = _ssl_config_class()()
    try:
        text_format.Parse(Path(path).read_text(), config)
    except (OSError, text_format.ParseError) as error:
        raise GrpcConfigError(f"Invalid SSL config file {path}: {error}") from None
    if not config.server_key or not config.server_cert:
        raise GrpcConfigError(f"SSL config file {path} needs server_key and server_cert")
    if config.client_verify and not config.custom_ca:
        raise GrpcConfigError(f"SSL config file {path}: client_verify needs custom_ca to verify clients with")
    return grpc.ssl_server_credentials(
        [(config.server_key.encode(), config.server_cert.encode())],
        root_certificates=config.custom_ca.encode() or None, require_client_auth=config.client_verify)


def _ssl_config_class():
    """`tensorflow.serving.SSLConfig` (ssl_config.proto), which tensorflow-serving-api does not ship."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(name="tensorflow_serving/config/ssl_config.proto",
                                               package="tensorflow.serving", syntax="proto3")
    message = proto.message_type.add(name="SSLConfig")
    for number, name in enumerate(("server_key", "server_cert", "custom_ca"), start=1):
        message.field.add(name=name, number=number, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    message.field.add(name="client_verify", number=4, type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.serving.SSLConfig"))


def health_names() -> list[str]:
    """Every service name a health check may ask about: "", each service with and without prefix."""
    names = [""]
    for full in service_names():
        names += [full, full.removeprefix(SERVICE_PREFIX)]
    return names


def parsing_handler(service: ServiceDescriptor, servicer: object) -> grpc.GenericRpcHandler:
    """The unary methods of `service`, served by the same-named coroutines of `servicer`.

    The request bytes are parsed in the handler, not by grpcio: grpcio answers a request it cannot
    deserialize with INTERNAL, TF Serving's clients expect INVALID_ARGUMENT for a malformed proto."""
    handlers = {}
    for method in service.methods:
        request_class = message_factory.GetMessageClass(method.input_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            _parsed(getattr(servicer, method.name), request_class),
            response_serializer=_serialize)
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _serialize(message: Any) -> bytes:
    return message.SerializeToString()


def _parsed(behavior: Callable[[Any, Any], Awaitable[Any]], request_class: type) -> Callable:
    async def handle(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
        try:
            request = request_class.FromString(raw)
        except DecodeError as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"Could not parse the {request_class.__name__}: {error}")
        return await behavior(request, context)

    return handle


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GrpcServer:
    """One grpc.aio server with both services, on its own loop thread. `start` then `stop`."""

    def __init__(self, core: GrpcCore, options: GrpcOptions) -> None:
        self.core = core
        self.options = options
        self.front = Front(core)
        self.addresses: list[str] = []   # bound addresses, e.g. 127.0.0.1:8500, unix:/tmp/s.sock
        self._credentials = ssl_credentials(options.ssl_config_file) if options.ssl_config_file else None
        self._server_options = server_options(options)  # a bad --grpc_channel_arguments fails here
        self._ready = threading.Event()
        self._error: str | None = None  # why it failed to start (text only: a kept traceback would
        # keep the unstarted grpc.aio server, and with it grpc's poller thread, alive)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._health: health_aio.HealthServicer | None = None
        # --enable_profiler: TensorFlow's ProfilerService on this port (started at its first call)
        self.profiler = ProfilerForwarder() if options.enable_profiler else None

    def start(self, timeout: float = 30.0) -> None:
        """Bind the ports and start serving; raises OSError if no port could be bound."""
        self._thread = threading.Thread(target=self._run, name="grpc-server", daemon=True)
        self._thread.start()
        self._ready.wait(timeout)
        if self._error is not None:
            raise OSError(self._error)

    def stop(self, grace: float = 2.0) -> None:
        """Refuse new calls, let running ones finish for up to `grace` seconds, stop the workers."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop just closed
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(grace + 5)
        self.front.close()
        self._remove_socket_file()

    def _remove_socket_file(self) -> None:
        """Remove the Unix socket file this server bound (a stale file would confuse the next run)."""
        path = self.options.socket_path
        if path and f"unix:{path}" in self.addresses:
            with contextlib.suppress(FileNotFoundError):
                Path(path).unlink()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # noqa: BLE001 - reported to start(), which raises it
            self._error = f"{type(error).__name__}: {error}"
            log.exception("gRPC server failed")
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = grpc.aio.server(options=self._server_options)
        front = self.front
        server.add_generic_rpc_handlers((
            parsing_handler(prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"],
                            PredictionServicer(front)),
            parsing_handler(model_service_pb2.DESCRIPTOR.services_by_name["ModelService"],
                            ModelServicer(front)),
        ))
        if self.profiler is not None:
            server.add_generic_rpc_handlers((self.profiler.handler(),))
        names = list(service_names())
        ready_watch = None
        if self.options.enable_health:
            self._health = health_aio.HealthServicer()
            health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
            for name in health_names():
                await self._health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
            ready_watch = asyncio.get_running_loop().create_task(self._serve_health_once_ready())
            names.append(health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
        reflection.enable_server_reflection([*names, reflection.SERVICE_NAME], server)
        try:
            self._bind(server)
            await server.start()
        except (OSError, RuntimeError) as error:  # nothing may stay behind: bound ports, the socket
            # file, the watch task; and no traceback is kept (it would keep the server object, and
            # grpc.aio's poller thread with it, alive)
            self._error = str(error)
            if ready_watch is not None:
                ready_watch.cancel()
            await server.stop(None)
            self._remove_socket_file()
            return
        self._ready.set()
        await self._stopping.wait()
        if ready_watch is not None:
            ready_watch.cancel()
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        await server.stop(2.0)
        if self.profiler is not None:
            await self.profiler.close()

    async def _serve_health_once_ready(self) -> None:
        """Say SERVING for every health name as soon as every configured model has a version
        AVAILABLE (checked every `READY_POLL_SECONDS`), then stop watching."""
        ready = self.core.ready
        while ready is not None and not ready():
            await asyncio.sleep(READY_POLL_SECONDS)
        assert self._health is not None
        for name in health_names():
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("Every model has a version AVAILABLE: gRPC health says SERVING")

    def _bind(self, server: grpc.aio.Server) -> None:
        """Add the Unix socket, then the TCP port; one that cannot be bound raises OSError (the
        caller then stops the server and removes the socket file)."""
        wanted = []
        if self.options.socket_path:
            wanted.append(f"unix:{self.options.socket_path}")
        if self.options.port:
            wanted.append(_address(self.options.host, self.options.port))
        for address in wanted:
            try:
                if self._credentials is not None:
                    bound = server.add_secure_port(address, self._credentials)
                else:
                    bound = server.add_insecure_port(address)
            except RuntimeError as error:
                raise OSError(f"Could not bind the gRPC address {address}: {error}") from None
            if not bound and not address.startswith("unix:"):
                raise OSError(f"Could not bind the gRPC address {address}")
            self.addresses.append(address)
