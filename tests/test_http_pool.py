"""shared.http_pool against a real uvicorn server: keep-alive, limits, streams, failures."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from shared.http_pool import HttpPool, UpstreamError
from shared.local_infra import free_port
from shared.serve import OneWriteReplies


class Origin:
    """A small real HTTP server that records who called and can hold its replies."""

    def __init__(self) -> None:
        self.url = ""
        self.peers: list[tuple[str, int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = asyncio.Event()
        self.stream_goes_on = asyncio.Event()
        self.stream_finished = asyncio.Event()

    def app(self) -> Starlette:
        async def echo(request: Request) -> Response:
            self.peers.append(request.client)
            return JSONResponse(
                {
                    "method": request.method,
                    "path": request.url.path,
                    "query": request.url.query,
                    "body": (await request.body()).decode(),
                    "headers": dict(request.headers),
                },
                headers={"ETag": '"9"'},
            )

        async def held(request: Request) -> Response:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await self.release.wait()
            self.in_flight -= 1
            return Response(b"done")

        async def closing(request: Request) -> Response:
            self.peers.append(request.client)
            return Response(b"bye", headers={"Connection": "close"})

        async def stream(request: Request) -> Response:
            async def lines() -> AsyncIterator[bytes]:
                try:
                    yield b"first\n"
                    await self.stream_goes_on.wait()
                    yield b"second\n"
                finally:
                    self.stream_finished.set()

            return StreamingResponse(lines(), media_type="text/plain")

        async def big(request: Request) -> Response:
            return Response(b"x" * 1_000_000)

        return Starlette(routes=[
            Route("/echo", echo, methods=["GET", "POST", "HEAD", "DELETE"]),
            Route("/held", held),
            Route("/closing", closing),
            Route("/stream", stream),
            Route("/big", big),
        ])  # fmt: skip


# uvicorn as it comes, and as the platform's services run it.
@pytest.fixture(params=["httptools", OneWriteReplies], ids=["uvicorn", "one-write-replies"])
async def origin(request: pytest.FixtureRequest) -> AsyncIterator[Origin]:
    origin = Origin()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(origin.app(), lifespan="off", log_level="warning", http=request.param)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    origin.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        yield origin
    finally:
        origin.release.set()
        origin.stream_goes_on.set()
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def pool_for(origin: Origin, **options: float) -> AsyncIterator[HttpPool]:
    pool = HttpPool(origin.url, **{"size": 4, **options})  # type: ignore[arg-type]
    try:
        yield pool
    finally:
        await pool.close()


async def test_a_request_carries_method_target_headers_and_body(origin: Origin) -> None:
    async with pool_for(origin) as pool:
        reply = await pool.request(
            "POST", "/echo?a=1&b=x%20y", [(b"content-type", b"application/json"),
                                          (b"x-modelplane-actor", "zoë".encode())],
            b'{"k": 1}',
        )  # fmt: skip
    assert reply.status == 200
    assert reply.header(b"etag") == b'"9"'
    seen = orjson.loads(reply.body)
    assert seen["method"] == "POST"
    assert seen["path"] == "/echo"
    assert seen["query"] == "a=1&b=x%20y"
    assert seen["body"] == '{"k": 1}'
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["content-length"] == "8"
    assert seen["headers"]["x-modelplane-actor"].encode("latin-1").decode() == "zoë"


async def test_sequential_requests_reuse_one_connection(origin: Origin) -> None:
    async with pool_for(origin) as pool:
        for _ in range(5):
            assert (await pool.request("GET", "/echo")).status == 200
    assert len(set(origin.peers)) == 1


async def test_an_idle_connection_past_its_time_is_not_reused(origin: Origin) -> None:
    async with pool_for(origin, idle_seconds=0.05) as pool:
        await pool.request("GET", "/echo")
        await asyncio.sleep(0.1)
        await pool.request("GET", "/echo")
    assert len(set(origin.peers)) == 2


async def test_a_reply_that_closes_its_connection_is_followed_by_a_new_one(origin: Origin) -> None:
    async with pool_for(origin, size=1) as pool:
        first = await pool.request("GET", "/closing")
        second = await pool.request("GET", "/closing")
    assert (first.body, second.body) == (b"bye", b"bye")
    assert len(set(origin.peers)) == 2


async def test_no_more_than_size_requests_are_in_flight(origin: Origin) -> None:
    async with pool_for(origin, size=2) as pool:
        calls = [asyncio.create_task(pool.request("GET", "/held")) for _ in range(5)]
        while origin.in_flight < 2:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # a third would be on its way by now
        assert origin.in_flight == 2
        origin.release.set()
        replies = await asyncio.gather(*calls)
    assert [r.body for r in replies] == [b"done"] * 5
    assert origin.most_in_flight == 2


async def test_a_large_body_arrives_whole(origin: Origin) -> None:
    async with pool_for(origin) as pool:
        reply = await pool.request("GET", "/big")
    assert reply.body == b"x" * 1_000_000


async def test_a_head_reply_has_no_body_and_the_next_request_works(origin: Origin) -> None:
    async with pool_for(origin, size=1) as pool:
        head = await pool.request("HEAD", "/echo")
        after = await pool.request("GET", "/echo")
    assert head.status == 200 and head.body == b""
    assert head.header(b"content-length") is not None
    assert after.status == 200


async def test_a_reply_of_unknown_length_streams_as_it_is_written(origin: Origin) -> None:
    async with pool_for(origin, size=1) as pool:
        reply = await pool.request("GET", "/stream")
        assert reply.body is None
        chunks = reply.chunks()
        async with asyncio.timeout(5):
            assert await anext(chunks) == b"first\n"  # before the origin has written the rest
            origin.stream_goes_on.set()
            assert await anext(chunks) == b"second\n"
            with pytest.raises(StopAsyncIteration):
                await anext(chunks)
        # The stream ended cleanly: its connection serves the next request.
        assert (await pool.request("GET", "/echo")).status == 200
    assert len(set(origin.peers)) == 1


async def test_leaving_a_stream_early_frees_its_connection_slot(origin: Origin) -> None:
    async with pool_for(origin, size=1) as pool:
        reply = await pool.request("GET", "/stream")
        chunks = reply.chunks()
        assert await anext(chunks) == b"first\n"
        await chunks.aclose()
        async with asyncio.timeout(5):
            assert (await pool.request("GET", "/echo")).status == 200
            await origin.stream_finished.wait()  # the origin saw the caller go


async def test_an_origin_that_does_not_listen_is_an_upstream_error() -> None:
    pool = HttpPool(f"http://127.0.0.1:{free_port()}", size=1)
    with pytest.raises(UpstreamError, match="cannot connect"):
        await pool.request("GET", "/")
    await pool.close()


async def test_a_slow_reply_times_out_and_frees_its_slot(origin: Origin) -> None:
    async with pool_for(origin, size=1) as pool:
        with pytest.raises(UpstreamError, match="in time"):
            await pool.request("GET", "/held", timeout=0.2)
        origin.release.set()
        assert (await pool.request("GET", "/echo")).status == 200


async def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(
    origin: Origin,
) -> None:
    async with pool_for(origin) as pool:
        with pytest.raises(ValueError, match="line break"):
            await pool.request("GET", "/echo", [(b"x-actor", b"a\r\nx-injected: 1")])
    assert origin.peers == []


async def test_a_closed_pool_refuses_requests(origin: Origin) -> None:
    pool = HttpPool(origin.url, size=1)
    await pool.request("GET", "/echo")
    await pool.close()
    with pytest.raises(UpstreamError, match="closed"):
        await pool.request("GET", "/echo")
