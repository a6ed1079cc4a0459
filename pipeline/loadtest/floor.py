"""Servers that do nothing, to measure what the load generator itself can reach (its ceiling).

- REST: the bench's raw floor (`bench/raw_asgi.py` serves this very app): a raw ASGI app on uvicorn
  with httptools and uvloop that reads the request and answers one constant JSON prediction.
- gRPC: a grpc.aio server whose every method answers an empty message (valid for any response
  type), with no protos and no TensorFlow: what a unary call costs before any serving work.

A level that reaches 80% of the generator's ceiling at the same concurrency measures the generator
as much as the server. :class:`Floor` starts one in a child process on a free loopback port::

    python -m pipeline.loadtest.floor --transport REST --port 9000
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from typing import Any

from pipeline.settings import PROJECT_ROOT

BODY = b'{"predictions":[[3.0]]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
START_TIMEOUT_S = 60.0


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Read the whole request body, then answer ``BODY`` (any path, any method)."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def serve_rest(port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, http="httptools", loop="uvloop", access_log=False,
                log_level="warning", lifespan="off")


def serve_grpc(port: int) -> None:
    import asyncio

    import grpc

    class AnyMethod(grpc.GenericRpcHandler):
        def service(self, handler_call_details: Any) -> Any:
            return grpc.unary_unary_rpc_method_handler(self.answer)

        async def answer(self, request: bytes, context: Any) -> bytes:
            return b""

    async def run() -> None:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", -1)])
        server.add_generic_rpc_handlers((AnyMethod(),))
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()

    asyncio.run(run())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Floor:
    """A do-nothing server of one transport in a child process (a context manager that stops it)."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.port = free_port()
        command = [sys.executable, "-m", "pipeline.loadtest.floor", "--transport", transport,
                   "--port", str(self.port)]
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.process.poll() is not None:
                error = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                raise OSError(f"the {self.transport} floor server exited: {error.strip()[-300:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise OSError(f"the {self.transport} floor server did not listen within "
                                  f"{START_TIMEOUT_S:g} s") from None
                time.sleep(0.05)

    def __enter__(self) -> Floor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process.stderr:
            self.process.stderr.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.loadtest.floor", description=__doc__)
    parser.add_argument("--transport", choices=("REST", "gRPC"), default="REST")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    (serve_grpc if args.transport == "gRPC" else serve_rest)(args.port)


if __name__ == "__main__":
    main()
