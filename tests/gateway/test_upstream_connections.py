"""The gateway's kept-alive connections to a service: one the service closed under a request is
retried when that is safe, and one service failure never becomes another request's."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.gateway.upstream import Upstream, UpstreamError
from shared.http import install_problem_handlers
from tests.gateway.conftest import ADMIN, running_gateway, serving

OK = b'{"ok":true}'


@dataclass
class ClosingService:
    """Answers the first request on each connection; closes the connection, unanswered, when
    a second one arrives on it: a kept-alive connection that the service closed just as the
    gateway sent a request down it."""

    url: str = ""
    seen: list[tuple[int, str]] = field(default_factory=list)  # (connection, request line)
    # Close each connection right after its first reply instead (as a keep-alive timeout
    # would, a moment later).
    close_after_reply: bool = False
    _connections: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections += 1
        connection = self._connections
        answered = 0
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line = head.split(b"\r\n", 1)[0].decode()
                self.seen.append((connection, line))
                length = 0
                for header in head.lower().split(b"\r\n"):
                    if header.startswith(b"content-length:"):
                        length = int(header.split(b":", 1)[1])
                await reader.readexactly(length)
                if answered:
                    break
                answered += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(OK), OK)
                )
                await writer.drain()
                if self.close_after_reply:
                    break
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator["ClosingService"]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        async with server:
            yield self
            server.close()


async def test_a_read_sent_down_a_connection_the_service_closed_is_sent_again(
    gateway_settings,
) -> None:
    async with ClosingService().running() as service:
        settings = gateway_settings(registry_url=service.url, jobs_url=service.url)
        async with running_gateway(settings) as gateway:
            first = await gateway.get("/api/v1/registry/models/a", headers=ADMIN)
            second = await gateway.get("/api/v1/registry/models/b", headers=ADMIN)
    assert (first.status_code, second.status_code) == (200, 200)
    lines = [line for _, line in service.seen if "/models/" in line]
    assert lines == [
        "GET /api/v1/registry/models/a HTTP/1.1",
        "GET /api/v1/registry/models/b HTTP/1.1",  # closed unanswered
        "GET /api/v1/registry/models/b HTTP/1.1",  # on a new connection
    ]


async def test_a_write_that_reached_the_service_is_never_sent_twice(gateway_settings) -> None:
    async with ClosingService().running() as service:
        settings = gateway_settings(registry_url=service.url, jobs_url=service.url)
        async with running_gateway(settings) as gateway:
            first = await gateway.patch("/api/v1/registry/models/a", json={}, headers=ADMIN)
            second = await gateway.patch("/api/v1/registry/models/b", json={}, headers=ADMIN)
    assert first.status_code == 200
    # The service may have applied it: the caller hears so, and decides.
    assert second.status_code == 503
    assert second.json()["type"] == "https://modelplane.dev/problems/service-unavailable"
    assert [line for _, line in service.seen].count("PATCH /api/v1/registry/models/b HTTP/1.1") == 1


async def test_a_write_after_the_service_closed_an_idle_connection_goes_on_a_new_one(
    gateway_settings,
) -> None:
    async with ClosingService(close_after_reply=True).running() as service:
        settings = gateway_settings(registry_url=service.url, jobs_url=service.url)
        async with running_gateway(settings) as gateway:
            first = await gateway.patch("/api/v1/registry/models/a", json={}, headers=ADMIN)
            await asyncio.sleep(0.2)  # the service's close reaches the gateway's pool
            second = await gateway.patch("/api/v1/registry/models/b", json={}, headers=ADMIN)
    assert (first.status_code, second.status_code) == (200, 200)
    patches = [(connection, line) for connection, line in service.seen if "PATCH" in line]
    assert [line for _, line in patches] == [
        "PATCH /api/v1/registry/models/a HTTP/1.1",
        "PATCH /api/v1/registry/models/b HTTP/1.1",
    ]
    assert patches[0][0] != patches[1][0]


def failing_service() -> FastAPI:
    """A service as ours are built (problem handlers installed), with a route that fails."""
    app = FastAPI()
    install_problem_handlers(app)

    @app.patch("/api/v1/registry/models/{name}")
    async def change(name: str) -> dict[str, str]:
        if name == "boom":
            raise RuntimeError("the service failed")
        return {"name": name}

    return app


async def test_after_a_service_fails_the_next_request_gets_its_own_reply(
    gateway_settings,
) -> None:
    async with serving(failing_service()) as url:
        settings = gateway_settings(registry_url=url, jobs_url=url)
        async with running_gateway(settings) as gateway:
            for i in range(20):
                failed = await gateway.patch("/api/v1/registry/models/boom", json={}, headers=ADMIN)
                other = await gateway.patch(f"/api/v1/registry/models/m{i}", json={}, headers=ADMIN)
                assert failed.status_code == 500
                assert (other.status_code, other.json()) == (200, {"name": f"m{i}"})


async def test_concurrent_requests_beside_failures_get_their_own_replies(
    gateway_settings,
) -> None:
    async with serving(failing_service()) as url:
        settings = gateway_settings(registry_url=url, jobs_url=url, registry_connections=4)
        async with running_gateway(settings) as gateway:

            async def call(name: str) -> httpx.Response:
                return await gateway.patch(
                    f"/api/v1/registry/models/{name}", json={}, headers=ADMIN
                )

            names = [("boom" if i % 3 == 0 else f"m{i}") for i in range(90)]
            replies = await asyncio.gather(*(call(name) for name in names))
    statuses = [(name, reply.status_code) for name, reply in zip(names, replies, strict=True)]
    assert statuses == [(name, 500 if name == "boom" else 200) for name in names]


def slow_service() -> Starlette:
    async def slow(_: Request) -> Response:
        await asyncio.sleep(2)
        return JSONResponse({"late": True})

    async def follow(_: Request) -> Response:
        async def lines() -> AsyncIterator[bytes]:
            for i in range(3):
                yield b"line %d\n" % i
                await asyncio.sleep(0.6)

        return StreamingResponse(lines(), media_type="text/plain")

    return Starlette(routes=[Route("/slow", slow), Route("/follow", follow)])


async def test_a_reply_is_timed_but_a_stream_may_outlast_the_timeout() -> None:
    async with serving(slow_service()) as url:
        upstream = Upstream([url], connections=2, timeout=1.0)
        await upstream.start()
        try:
            with pytest.raises(UpstreamError, match="in time"):
                await upstream.request("GET", "/slow")
            streamed = await upstream.request("GET", "/follow")
            assert streamed.body is None
            assert await streamed.read() == b"line 0\nline 1\nline 2\n"  # over 1.2 s
        finally:
            await upstream.close()
