"""shared.serve.OneWriteReplies: uvicorn's own protocol, fed a request as the event loop
would, writes a reply of known length in one piece and a streamed one as it comes."""

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Callable

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from uvicorn.server import ServerState

from shared.serve import OneWriteReplies


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, one entry per send the socket would have made."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, list_of_data) -> None:  # one writev on a real transport
        self.writes.append(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def app(gate: asyncio.Event) -> Starlette:
    async def item(request: Request) -> Response:
        return JSONResponse({"id": 7, "name": "churn"})

    async def nothing(request: Request) -> Response:
        return Response(status_code=204)

    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type="text/plain")

    async def stream(request: Request) -> Response:
        async def lines() -> AsyncIterator[bytes]:
            await gate.wait()
            yield b"first\n"
            yield b"second\n"

        return StreamingResponse(lines(), media_type="text/plain")

    return Starlette(routes=[
        Route("/item", item, methods=["GET", "HEAD"]),
        Route("/nothing", nothing),
        Route("/echo", echo, methods=["POST"]),
        Route("/stream", stream),
    ])  # fmt: skip


class Connection:
    def __init__(self) -> None:
        self.gate = asyncio.Event()
        config = uvicorn.Config(
            app(self.gate), lifespan="off", http=OneWriteReplies, access_log=False
        )
        config.load()
        self.protocol = OneWriteReplies(config, ServerState(), app_state={})
        self.transport = RecordingTransport()
        self.protocol.connection_made(self.transport)

    async def send(self, request: bytes) -> list[bytes]:
        """Feed `request` (or the rest of one) and return the writes made until its reply is
        complete."""
        done_before = self.protocol.server_state.total_requests
        self.transport.writes.clear()
        self.protocol.data_received(request)
        await until(lambda: self.protocol.server_state.total_requests > done_before)
        return list(self.transport.writes)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.001)


@pytest.fixture
async def connection() -> Connection:
    return Connection()


async def test_a_reply_of_known_length_is_one_write(connection: Connection) -> None:
    writes = await connection.send(b"GET /item HTTP/1.1\r\nhost: x\r\n\r\n")
    assert len(writes) == 1
    head, _, body = writes[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 23" in head
    assert body == b'{"id":7,"name":"churn"}'


async def test_each_reply_on_a_kept_connection_is_one_write(connection: Connection) -> None:
    for _ in range(3):
        writes = await connection.send(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello"
        )
        assert len(writes) == 1
        assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert writes[0].endswith(b"\r\n\r\nhello")
    assert not connection.transport.closed


async def test_a_served_request_is_freed_without_the_garbage_collector(
    connection: Connection,
) -> None:
    # Whatever a request leaves in a reference cycle waits for a collection, and a collection
    # of a thousand requests' leftovers stopped a service for 5-27 ms under load.
    gc.disable()
    try:
        await connection.send(b"GET /item HTTP/1.1\r\nhost: x\r\n\r\n")
        served = weakref.ref(connection.protocol.cycle)
        await connection.send(b"GET /item HTTP/1.1\r\nhost: x\r\n\r\n")  # the next one
        await until(lambda: not connection.protocol.tasks)  # its task has ended
        assert served() is None
    finally:
        gc.enable()


async def test_a_reply_after_a_100_continue_is_still_one_write(connection: Connection) -> None:
    connection.protocol.data_received(
        b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n"
    )
    await until(lambda: bool(connection.transport.writes))
    assert connection.transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]

    writes = await connection.send(b"hello")  # the body the client held back
    assert len(writes) == 1
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b"\r\n\r\nhello")


async def test_replies_without_a_body_still_go_out_whole(connection: Connection) -> None:
    head = await connection.send(b"HEAD /item HTTP/1.1\r\nhost: x\r\n\r\n")
    no_content = await connection.send(b"GET /nothing HTTP/1.1\r\nhost: x\r\n\r\n")
    assert len(head) == 1 and head[0].endswith(b"\r\n\r\n") and b"content-length: 23" in head[0]
    assert b"HTTP/1.1 204 No Content\r\n" in b"".join(no_content)
    assert b"".join(no_content).endswith(b"\r\n\r\n")


async def test_a_streamed_reply_sends_its_headers_before_its_body_is_ready(
    connection: Connection,
) -> None:
    connection.protocol.data_received(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
    await until(lambda: bool(connection.transport.writes))
    assert connection.transport.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding: chunked" in connection.transport.writes[0]
    assert connection.transport.writes[0].endswith(b"\r\n\r\n")  # headers only: no body yet

    connection.gate.set()
    await until(lambda: connection.protocol.server_state.total_requests == 1)
    assert (
        b"".join(connection.transport.writes[1:]) == b"6\r\nfirst\n\r\n7\r\nsecond\n\r\n0\r\n\r\n"
    )
