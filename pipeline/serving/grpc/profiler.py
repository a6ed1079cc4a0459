"""TensorFlow's `ProfilerService` on the gRPC port (`--enable_profiler`, on by default as in TF Serving).

TF Serving registers TensorFlow's profiler service on its gRPC server, so TensorBoard's "Capture
profile" (and `tf.profiler.experimental.client.trace('grpc://HOST:PORT', ...)`) works against a
running server. Here TensorFlow's own profiler server does the work (`tf.profiler.experimental.
server.start`, in this process, so the trace is of this server): it listens on a port of its own,
and `ProfilerForwarder` serves `tensorflow.ProfilerService` on our port by handing each call's bytes
to it and its answer (or status) back, unchanged. TensorFlow's profiler server listens on every
interface of its own port (it offers no host choice); the port is logged at start-up.

TensorFlow's profiler server can be started once per process and never stopped, and it listens on
every interface: it is started at the first ProfilerService call (so a server nobody profiles opens
no port beyond the ones its flags name) and reused after. Thread-safety: `start` from any thread;
the handler runs on the gRPC loop and starts it off the loop.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import grpc

log = logging.getLogger(__name__)

SERVICE = "tensorflow.ProfilerService"
METHODS = ("Profile", "Terminate", "Monitor")
"""The unary methods of tensorflow/tsl/profiler/protobuf/profiler_service.proto."""

_STARTED_LOCK = threading.Lock()
_started_port: int | None = None  # TensorFlow's profiler server in this process, once started


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProfilerForwarder:
    """`tensorflow.ProfilerService` on our gRPC server, answered by TensorFlow's profiler server."""

    def __init__(self) -> None:
        self.port: int | None = None
        self._channel: grpc.aio.Channel | None = None

    def start(self) -> None:
        """Start TensorFlow's profiler server on a free port (the first time in this process);
        called at the first ProfilerService call."""
        global _started_port
        with _STARTED_LOCK:
            if _started_port is None:
                import tensorflow as tf

                port = _free_port()
                tf.profiler.experimental.server.start(port)
                _started_port = port
        self.port = _started_port
        log.info("Profiler service (tensorflow.ProfilerService) on the gRPC port, served by TensorFlow's "
                 "profiler server on port %d (--enable_profiler)", self.port)

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler to add to a grpc.aio server: raw bytes in, raw bytes out."""
        return grpc.method_handlers_generic_handler(SERVICE, {
            method: grpc.unary_unary_rpc_method_handler(self._forwarder(method)) for method in METHODS})

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def _forwarder(self, method: str):
        path = f"/{SERVICE}/{method}"

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            if self.port is None:
                try:
                    await asyncio.to_thread(self.start)
                except Exception as error:  # noqa: BLE001 (the caller is told; the server goes on)
                    log.warning("TensorFlow's profiler server could not start: %s", error)
                    await context.abort(grpc.StatusCode.UNAVAILABLE,
                                        f"The profiler service could not start: {error}")
            if self._channel is None:  # made on the gRPC server's loop, at the first call
                self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{self.port}")
            call = self._channel.unary_unary(path)
            try:
                return await call(request, timeout=context.time_remaining())
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")

        return forward
