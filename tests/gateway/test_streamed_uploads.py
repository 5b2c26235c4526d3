"""A streamed path (a service's `streamed_paths`: file uploads) takes bodies far past the
gateway's body limit, handed on as they arrive, under its own limit: 413 at once for a
Content-Length past it, and as soon as a chunked body passes it. Over real HTTP connections."""

import asyncio
import contextlib
import hashlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.gateway.app import create_app
from shared.service_table import ServiceSpec
from tests.gateway.conftest import ADMIN, serving

BODY_LIMIT = 1000
UPLOAD_LIMIT = 4 * 1024 * 1024
UPLOAD_PATH = "/api/v1/datasets/d-1/versions/upload"
DOWNLOAD = os.urandom(3 * 1024 * 1024)


@dataclass
class FakeDatasets:
    """Reads each upload as a stream and records its size, md5 and announced length."""

    seen: list[dict] = field(default_factory=list)
    broken: int = 0

    def app(self) -> Starlette:
        async def upload(request: Request) -> Response:
            digest, size, pieces = hashlib.md5(), 0, 0
            try:
                async for chunk in request.stream():
                    digest.update(chunk)
                    size += len(chunk)
                    pieces += 1
            except ClientDisconnect:
                self.broken += 1
                return Response(status_code=400)
            record = {
                "size": size,
                "md5": digest.hexdigest(),
                "pieces": pieces,
                "content_length": request.headers.get("content-length"),
            }
            self.seen.append(record)
            return JSONResponse(record, status_code=201)

        async def other(request: Request) -> Response:
            return JSONResponse({"size": len(await request.body())})

        async def readyz(_: Request) -> Response:
            return JSONResponse({"ready": True})

        async def files(_: Request) -> Response:
            return Response(
                DOWNLOAD,
                media_type="application/x-tar",
                headers={"Content-Disposition": 'attachment; filename="d.tar"'},
            )

        return Starlette(
            routes=[
                Route("/readyz", readyz),
                Route(UPLOAD_PATH, upload, methods=["POST"]),
                Route("/api/v1/datasets", other, methods=["POST"]),
                Route("/api/v1/datasets/versions/v-1/files", files),
            ]
        )


TABLE = (
    ServiceSpec(
        "datasets",
        default_port=8006,
        path_roots=("/api/v1/datasets",),
        streamed_paths=(r"/api/v1/datasets/[^/]+/versions/upload",),
    ),
    ServiceSpec("gateway", default_port=8000, start_order=2),
)


@pytest.fixture
async def datasets() -> AsyncIterator[tuple[FakeDatasets, str]]:
    fake = FakeDatasets()
    async with serving(fake.app()) as url:
        yield fake, url


@pytest.fixture
async def gateway_url(gateway_settings, datasets) -> AsyncIterator[str]:
    settings = gateway_settings(
        service_urls={"datasets": datasets[1]},
        max_body_bytes=BODY_LIMIT,
        max_upload_bytes=UPLOAD_LIMIT,
    )
    async with serving(create_app(settings, TABLE), lifespan="on") as url:
        yield url


@pytest.fixture
async def gateway(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=gateway_url, headers=ADMIN, timeout=60) as client:
        yield client


def pieces(body: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    return chunks()


async def test_an_upload_past_the_body_limit_is_streamed_to_the_service_whole(gateway, datasets):
    fake, _ = datasets
    body = os.urandom(3 * 1024 * 1024)

    announced = await gateway.post(UPLOAD_PATH, content=body)
    chunked = await gateway.post(UPLOAD_PATH, content=pieces(body))

    for reply in (announced, chunked):
        assert reply.status_code == 201, reply.text
        assert reply.json()["md5"] == hashlib.md5(body).hexdigest()
        assert reply.json()["size"] == len(body)
    assert announced.json()["content_length"] == str(len(body))  # for the service's progress
    assert announced.json()["pieces"] > 1  # it arrived piece by piece, not as one read
    assert len(fake.seen) == 2
    # Every other path keeps the gateway's body limit.
    small = await gateway.post("/api/v1/datasets", content=b"{}" * BODY_LIMIT)
    assert small.status_code == 413
    assert small.json()["type"].endswith("/request-too-large")


async def raw_post(url: str, head: bytes, pieces_: list[bytes]) -> tuple[bytes, bytes]:
    """Send a request as raw pieces until the gateway answers; its head and body."""
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    writer.write(
        f"POST {UPLOAD_PATH} HTTP/1.1\r\nHost: gateway\r\n"
        f"Authorization: {ADMIN['Authorization']}\r\n".encode()
        + head
        + b"\r\n"
    )
    with contextlib.suppress(ConnectionError):
        for piece in pieces_:
            writer.write(piece)
            await writer.drain()
    reply = await asyncio.wait_for(reader.read(), timeout=30)  # until the gateway closes
    writer.close()
    head_, _, body = reply.partition(b"\r\n\r\n")
    return head_.lower(), body


async def test_an_upload_announced_past_its_limit_is_413_before_the_service_sees_it(
    gateway_url, datasets
):
    fake, _ = datasets
    head, body = await raw_post(
        gateway_url, f"Content-Length: {UPLOAD_LIMIT + 1}\r\n".encode(), [b"x" * 100]
    )

    assert head.startswith(b"http/1.1 413 ")
    assert b"content-type: application/problem+json" in head
    assert b"connection: close" in head
    problem = json.loads(body)
    assert problem["type"].endswith("/upload-too-large")
    assert problem["max_bytes"] == UPLOAD_LIMIT
    assert fake.seen == [] and fake.broken == 0


async def test_a_chunked_upload_is_cut_off_once_past_its_limit(gateway_url, datasets):
    fake, _ = datasets
    piece = os.urandom(64 * 1024)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    head, body = await raw_post(
        gateway_url, b"Transfer-Encoding: chunked\r\n", [chunk] * (UPLOAD_LIMIT // len(piece) + 1)
    )  # then it waits

    assert head.startswith(b"http/1.1 413 ")
    assert b"connection: close" in head
    assert json.loads(body)["type"].endswith("/upload-too-large")
    assert fake.seen == []  # the service never got a whole body to act on


async def test_an_upload_needs_a_credential_first(gateway, datasets):
    fake, _ = datasets
    reply = await gateway.post(UPLOAD_PATH, content=b"x" * 5000, headers={"Authorization": ""})
    assert reply.status_code == 401
    assert fake.seen == []


async def test_a_large_download_comes_back_with_its_length_and_file_name(gateway):
    async with gateway.stream("GET", "/api/v1/datasets/versions/v-1/files") as reply:
        assert reply.status_code == 200
        assert reply.headers["content-length"] == str(len(DOWNLOAD))  # a client shows progress
        assert reply.headers["content-disposition"] == 'attachment; filename="d.tar"'
        assert await reply.aread() == DOWNLOAD


async def test_an_upload_with_an_idempotency_key_is_made_once(gateway, gateway_url, datasets):
    fake, _ = datasets
    body = os.urandom(2 * 1024 * 1024)
    key = {"Idempotency-Key": f"upload-{os.urandom(8).hex()}"}

    first = await gateway.post(UPLOAD_PATH, content=pieces(body), headers=key)
    again = await gateway.post(UPLOAD_PATH, content=body, headers=key)
    assert first.status_code == 201, first.text
    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert len(fake.seen) == 1  # the retry never reached the service

    other = await gateway.post(UPLOAD_PATH, content=body[:-1], headers=key)
    assert other.status_code == 422 and other.json()["type"].endswith("/idempotency-key-reused")
    assert len(fake.seen) == 1

    # An upload the gateway refused (past its limit) frees its key for the retry.
    fresh = {"Idempotency-Key": f"upload-{os.urandom(8).hex()}"}
    head, _ = await raw_post(
        gateway_url,
        f"Idempotency-Key: {fresh['Idempotency-Key']}\r\n"
        f"Content-Length: {UPLOAD_LIMIT + 1}\r\n".encode(),
        [b"x" * 100],
    )
    assert head.startswith(b"http/1.1 413 ")
    retried = await gateway.post(UPLOAD_PATH, content=body, headers=fresh)
    assert retried.status_code == 201 and "idempotent-replayed" not in retried.headers
    assert len(fake.seen) == 2
