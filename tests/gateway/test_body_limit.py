"""A request body past `MODELPLANE_MAX_BODY_BYTES` is refused with 413 before anything reads it
whole, over a real HTTP connection, whether its length is announced or it comes chunked."""

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from services.gateway.app import create_app
from tests.gateway.conftest import ADMIN, FakeRegistry, serving

LIMIT = 1000


@pytest.fixture
async def gateway_url(gateway_settings, registry: FakeRegistry) -> AsyncIterator[str]:
    settings = gateway_settings(
        registry_url=registry.url, jobs_url=registry.url, max_body_bytes=LIMIT
    )
    async with serving(create_app(settings), lifespan="on") as url:
        yield url


@pytest.fixture
async def gateway(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_url, headers=ADMIN) as client:
        yield client


def chunked(body: bytes) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 300):
            yield body[start : start + 300]

    return chunks()


def assert_too_large(reply: httpx.Response) -> None:
    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["type"] == "https://modelplane.dev/problems/request-too-large"
    assert problem["max_bytes"] == LIMIT
    assert reply.headers["x-correlation-id"]


async def test_a_body_announced_past_the_limit_is_413_and_not_passed_on(
    gateway: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    reply = await gateway.patch("/api/v1/registry/models/m-1", content=b"x" * (LIMIT + 1))
    assert_too_large(reply)
    assert registry.requests == []
    # What it sent was dropped: the connection goes on with the next request.
    assert "connection" not in reply.headers
    assert (await gateway.get("/api/v1/registry/models")).status_code == 200


async def test_a_body_announced_past_what_is_drained_is_refused_unread_and_closes(
    gateway_url: str, registry: FakeRegistry
) -> None:
    address = urlsplit(gateway_url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(
        b"PATCH /api/v1/registry/models/m-1 HTTP/1.1\r\nHost: gateway\r\n"
        b"Content-Length: 10000000000\r\n\r\n" + b"x" * 100
    )
    reply = await asyncio.wait_for(reader.read(), timeout=10)  # until the server closes
    writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in head.lower()
    assert b"/problems/request-too-large" in body
    assert registry.requests == []


async def test_a_chunked_body_is_refused_once_it_passes_the_limit(
    gateway: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    reply = await gateway.patch("/api/v1/registry/models/m-1", content=chunked(b"x" * 3000))
    assert_too_large(reply)
    assert registry.requests == []


async def test_the_gateways_own_routes_are_limited_too(gateway: httpx.AsyncClient) -> None:
    body = b'{"name": "' + b"p" * LIMIT + b'"}'
    assert_too_large(await gateway.post("/api/v1/projects", content=body))
    assert_too_large(await gateway.post("/api/v1/projects", content=chunked(body)))


async def test_a_body_of_exactly_the_limit_is_passed_on_whole(
    gateway: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    for content in (b"y" * LIMIT, chunked(b"z" * LIMIT)):
        reply = await gateway.patch("/api/v1/registry/models/m-1", content=content)
        assert reply.status_code == 200
    assert [len(seen["body"]) for seen in registry.requests] == [LIMIT, LIMIT]
