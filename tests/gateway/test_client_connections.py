"""The gateway as `python -m services.gateway` serves it, against clients that hold connections
without sending a request: each is closed after the header timeout, a trickled body gets 408,
a request head over 64 KiB gets 431, and a real client still gets in past hundreds of idle
sockets."""

import asyncio
import contextlib
import os
import resource
import sys
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from shared.local_infra import free_port, tcp_answers
from tests.gateway.conftest import ADMIN, ADMIN_TOKEN, FakeRegistry

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_CONNECTIONS = 32
# The gateway starts with fewer descriptors than the idle sockets below would take.
STARTING_DESCRIPTORS = 256
IDLE_SOCKETS = 400


@contextlib.asynccontextmanager
async def gateway_process(
    database_url: str, nats_url: str, registry_url: str
) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """`python -m services.gateway`, started with few descriptors and short timeouts."""
    port = free_port()
    env = {
        **os.environ,
        "MODELPLANE_DATABASE_URL": database_url,
        "MODELPLANE_NATS_URL": nats_url,
        "MODELPLANE_HTTP_PORT": str(port),
        "MODELPLANE_REGISTRY_URL": registry_url,
        "MODELPLANE_JOBS_URL": registry_url,
        "MODELPLANE_ADMIN_TOKEN": ADMIN_TOKEN,
        "MODELPLANE_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        "MODELPLANE_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
        "MODELPLANE_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    }

    def few_descriptors() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (STARTING_DESCRIPTORS, hard))

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.gateway", env=env, preexec_fn=few_descriptors
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get("/healthz")).status_code == 200:
                        break
                assert process.returncode is None, "the gateway exited"
                await asyncio.sleep(0.1)
        yield process, url
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()


@pytest.fixture(scope="module")
async def gateway_url(
    database_url: str, nats_url: str, fake_registry: FakeRegistry
) -> AsyncIterator[str]:
    async with gateway_process(database_url, nats_url, fake_registry.url) as (_, url):
        yield url


async def connect(url: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def seconds_until_closed(reader: asyncio.StreamReader, limit: float = 10.0) -> float:
    """How long until the server closes the connection (what it sent before is dropped)."""
    started = time.monotonic()
    with contextlib.suppress(ConnectionError):
        while await asyncio.wait_for(reader.read(65536), limit):
            pass
    return time.monotonic() - started


async def test_a_connection_that_sends_nothing_is_closed(gateway_url: str) -> None:
    reader, writer = await connect(gateway_url)
    assert await seconds_until_closed(reader) < HEADER_TIMEOUT + 2
    writer.close()


async def test_headers_trickled_slower_than_the_timeout_are_cut_off(gateway_url: str) -> None:
    reader, writer = await connect(gateway_url)
    closed = asyncio.ensure_future(seconds_until_closed(reader))
    with contextlib.suppress(ConnectionError):
        for _ in range(40):  # 10 s of headers, a line every quarter second
            if closed.done():
                break
            writer.write(b"GET /healthz HTTP/1.1\r\n" if _ == 0 else b"X-Slow: 1\r\n")
            await writer.drain()
            await asyncio.sleep(0.25)
    assert await closed < HEADER_TIMEOUT + 2
    writer.close()


async def test_an_idle_kept_alive_connection_is_closed(gateway_url: str) -> None:
    reader, writer = await connect(gateway_url)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    assert await seconds_until_closed(reader) < HEADER_TIMEOUT + 2
    writer.close()


async def test_a_body_that_does_not_arrive_in_time_is_408_and_closes(
    gateway_url: str, registry: FakeRegistry
) -> None:
    reader, writer = await connect(gateway_url)
    writer.write(
        b"POST /api/v1/registry/models HTTP/1.1\r\nHost: gateway\r\n"
        b"Authorization: Bearer " + ADMIN_TOKEN.encode() + b"\r\n"
        b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"na'
    )
    reply = await asyncio.wait_for(reader.read(), BODY_TIMEOUT + 5)  # until the server closes
    writer.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), reply
    assert b"/problems/request-timeout" in body
    assert registry.requests == []


async def test_a_request_head_over_the_limit_is_431_and_one_under_it_is_served(
    gateway_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        large = await client.get("/api/v1/projects", headers={**ADMIN, "X-Pad": "a" * 48_000})
        huge = await client.get("/api/v1/projects", headers={**ADMIN, "X-Pad": "a" * 100_000})
    assert large.status_code == 200, large.text
    assert huge.status_code == 431


async def test_a_real_client_gets_in_past_hundreds_of_idle_sockets(gateway_url: str) -> None:
    idle = [await connect(gateway_url) for _ in range(IDLE_SOCKETS)]
    try:
        started = time.monotonic()
        async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
            reply = await client.get("/api/v1/projects", headers=ADMIN)
        assert reply.status_code == 200
        # The idle ones ahead of it leave the gateway a header timeout at a time.
        waves = IDLE_SOCKETS / MAX_CONNECTIONS + 1
        assert time.monotonic() - started < waves * (HEADER_TIMEOUT + 0.5)
    finally:
        for _, writer in idle:
            writer.close()


async def test_a_gateway_killed_hard_leaves_its_port_free(
    database_url: str, nats_url: str, fake_registry: FakeRegistry
) -> None:
    async with gateway_process(database_url, nats_url, fake_registry.url) as (process, url):
        process.kill()  # the server's worker process must not outlive it
        await process.wait()
        port = int(url.rsplit(":", 1)[1])
        deadline = time.monotonic() + 10
        while tcp_answers("127.0.0.1", port, timeout=0.2):
            assert time.monotonic() < deadline, "something still listens on the gateway's port"
            await asyncio.sleep(0.1)
