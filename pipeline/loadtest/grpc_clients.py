"""The gRPC side of a level: the clients that send calls over `pipeline.loadtest.grpc_wire`'s HTTP/2
connections, in a closed loop (each answer's callback sends that client's next call) or on the
open loop's schedule, counted in the level's :class:`~pipeline.loadtest.clients.Tally`.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from pipeline.loadtest.clients import GRPC_CONNECTIONS, RETRY_S, LevelPlan, Tally, error_kind
from pipeline.loadtest.grpc_wire import Call, GrpcConnection
from pipeline.loadtest.results import OK


def grpc_timeout(seconds: float) -> str:
    """A ``grpc-timeout`` value (at most 8 digits and a unit) for ``seconds``."""
    millis = math.ceil(seconds * 1000)
    return f"{millis}m" if millis < 10**8 else f"{min(math.ceil(seconds), 10**8 - 1)}S"


def request_head(path: str, authority: str, timeout_s: float) -> bytes:
    """The HPACK block of every request's HEADERS: fields never indexed, so it stays the same."""
    import hpack

    fields = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", authority),
              ("content-type", "application/grpc"), ("user-agent", "pipeline.loadtest"), ("te", "trailers"),
              ("grpc-timeout", grpc_timeout(timeout_s))]
    return hpack.Encoder().encode([(name, value, True) for name, value in fields], huffman=False)


class GrpcClients:
    """The gRPC side of a level: ``plan.connections`` HTTP/2 connections (opened on demand, again
    after one is lost), each client's calls on one of them, several in flight on each."""

    def __init__(self, plan: LevelPlan, tally: Tally) -> None:
        self.plan, self.tally = plan, tally
        self.loop = asyncio.get_running_loop()
        target = plan.target
        self.head = request_head(target.method, target.address, plan.timeout_s)
        self.message = b"\x00" + len(target.payload).to_bytes(4, "big") + target.payload
        count = max(1, min(plan.connections or GRPC_CONNECTIONS, plan.clients))
        self.slots: list[GrpcConnection | None] = [None] * count
        self.opening: list[asyncio.Future | None] = [None] * count
        self.opened: list[GrpcConnection] = []
        self.closed = False

    def _ended(self, connection: GrpcConnection, call: Call, answered: bool, kind: str, detail: Any) -> None:
        client, started, waiter = call
        if answered:
            self.tally.answer(client, started, kind == OK, kind, detail)
        else:
            self.tally.failure(kind, detail)
        if waiter is None:  # a closed loop: the next call at once (the client reconnects if it cannot)
            connection.start((client, time.perf_counter(), None))
        elif not waiter.done():
            waiter.set_result(None)

    async def connection(self, slot: int) -> GrpcConnection:
        """The slot's connection, opened if there is none that takes calls (one opening shared by
        the clients waiting for it); ``OSError`` or ``TimeoutError`` when it cannot be opened."""
        connection = self.slots[slot]
        if connection is not None and connection.usable:
            return connection
        opening = self.opening[slot]
        if opening is None:
            opening = self.opening[slot] = asyncio.ensure_future(self._open(slot))
            opening.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(opening)

    async def _open(self, slot: int) -> GrpcConnection:
        plan = self.plan
        try:
            opening = GrpcConnection.open(self.loop, plan.target.host, plan.target.port, self.head,
                                          self.message, plan.timeout_s, self._ended)
            connection = await asyncio.wait_for(opening, plan.timeout_s)
            if self.closed:  # the level ended while it opened
                connection.close()
            self.slots[slot] = connection
            self.opened.append(connection)
            return connection
        finally:
            self.opening[slot] = None

    async def closed_loop(self, client: int) -> None:
        """One client's closed loop: each answer's callback sends its next call on the same
        connection; a lost connection is opened again, after :data:`RETRY_S` when that fails."""
        slot = client % len(self.slots)
        while True:
            try:
                connection = await self.connection(slot)
            except (OSError, EOFError, TimeoutError) as error:
                self.tally.failure(error_kind(error), error)
                await asyncio.sleep(RETRY_S)
                continue
            if connection.start((client, time.perf_counter(), None)):
                await asyncio.shield(connection.finished)

    async def one(self, client: int, started: float) -> None:
        """One call, counted (the open loop's, and the check before a sweep)."""
        try:
            connection = await self.connection(client % len(self.slots))
        except (OSError, EOFError, TimeoutError) as error:
            self.tally.failure(error_kind(error), error)
            return
        waiter = self.loop.create_future()
        if connection.start((client, started, waiter)):
            await waiter
        else:
            self.tally.failure("connection reset", "the server is closing the connection")

    async def scheduled(self, client: int, started: float) -> None:
        await self.one(client, started)

    def close(self) -> None:
        self.closed = True
        for connection in self.opened:
            connection.close()
