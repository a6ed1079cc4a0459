"""The load tool's HTTP/1.1 client connection against a scripted loopback server (asyncio, no model):
in a closed loop it sends the next request from the callback that read the last answer, counts each
answer's status, stops when the server closes the connection, and gives up on a silent server."""

from __future__ import annotations

import asyncio

import pytest

from pipeline.loadtest.clients import REST, HttpConnection, Target

REQUEST = b"POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


def answer(status: int, body: bytes, close: bool = False) -> bytes:
    head = f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
    return (head + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body


async def serve(answers: list[bytes], received: list[bytes]) -> asyncio.Server:
    """Answer each request read with the next of ``answers``; when they run out, stay silent."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for reply in answers:
            head = await reader.readuntil(b"\r\n\r\n")
            body = await reader.readexactly(int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
            received.append(head + body)
            writer.write(reply)
            await writer.drain()
        await reader.read()  # silent until the client leaves
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_repeat_sends_again_after_each_answer_until_the_server_closes() -> None:
    answers = [answer(200, b'{"predictions":[[3.0]]}'), answer(400, b'{"error":"bad input"}'),
               answer(200, b"{}", close=True)]
    received: list[bytes] = []
    seen: list[tuple[int, bytes]] = []

    async def run() -> object:
        server = await serve(answers, received)
        port = server.sockets[0].getsockname()[1]
        connection = await HttpConnection.open(asyncio.get_running_loop(), Target(REST, "127.0.0.1", port,
                                                                                   REQUEST))
        try:
            return await asyncio.wait_for(connection.repeat(
                REQUEST, 30.0, lambda started, status, body: seen.append((status, bytes(body)))), 60)
        finally:
            connection.close()
            server.close()

    assert asyncio.run(run()) is None  # ended by the server's "Connection: close", not by an error
    assert received == [REQUEST] * 3  # one request per answer, none after the last
    assert seen == [(200, b""), (400, b'{"error":"bad input"}'), (200, b"")]  # error bodies kept


def test_repeat_gives_up_on_a_server_that_stops_answering() -> None:
    async def run() -> None:
        server = await serve([answer(200, b"{}")], [])
        port = server.sockets[0].getsockname()[1]
        connection = await HttpConnection.open(asyncio.get_running_loop(), Target(REST, "127.0.0.1", port,
                                                                                   REQUEST))
        try:
            await asyncio.wait_for(connection.repeat(REQUEST, 0.2, lambda *_: None), 60)
        finally:
            server.close()

    with pytest.raises(TimeoutError):
        asyncio.run(run())
