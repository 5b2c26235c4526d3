"""Fixtures for the gateway's tests: the app in-process over real Postgres and NATS, and a
small real HTTP server standing in for the registry (it records what the gateway forwards)."""

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from shared.auth import CREDENTIAL_HEADER, LOCAL_INTERNAL_KEY, Caller, CredentialVerifier
from shared.service_table import ServiceSpec, backends

ADMIN_TOKEN = "test-admin-secret"


@dataclass
class FakeRegistry:
    """Speaks HTTP like the registry; records each forwarded request."""

    url: str = ""
    ready: bool = True
    requests: list[dict] = field(default_factory=list)
    # A job whose log is followed: its second line comes when this is set.
    log_goes_on: asyncio.Event = field(default_factory=asyncio.Event)
    # A request to `.../held` is answered once this is set.
    held: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        async def following_log(_: Request) -> Response:
            async def lines() -> AsyncIterator[bytes]:
                yield b"epoch 0\n"
                await self.log_goes_on.wait()
                yield b"epoch 1\n"

            return StreamingResponse(lines(), media_type="text/plain")

        async def openapi(_: Request) -> Response:
            return JSONResponse(REGISTRY_OPENAPI)

        async def readyz(_: Request) -> Response:
            return JSONResponse({"ready": self.ready}, status_code=200 if self.ready else 503)

        async def echo(request: Request) -> Response:
            body = await request.body()
            seen = {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": body.decode(),
            }
            self.requests.append(seen)
            path = request.path_params["path"]
            if path.endswith("held"):
                await self.held.wait()
            if path.startswith("models/missing"):
                return Response(
                    MISSING_MODEL_PROBLEM, status_code=404, media_type="application/problem+json"
                )
            if request.method == "POST" and path == "models":
                return JSONResponse(
                    seen,
                    status_code=201,
                    headers={
                        "ETag": '"1"',
                        "Location": f"{self.url}/api/v1/registry/models/m-1",
                        "X-Internal": "not for clients",
                    },
                )
            return JSONResponse(seen, headers={"ETag": '"7"'})

        methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(
            routes=[
                Route("/openapi.json", openapi),
                Route("/readyz", readyz),
                Route("/api/v1/jobs/following/logs", following_log),
                Route("/api/v1/registry/{path:path}", echo, methods=methods),
                # It stands in for the jobs service too.
                Route("/api/v1/{path:path}", echo, methods=methods),
            ]
        )


MISSING_MODEL_PROBLEM = (
    b'{"type":"https://modelplane.dev/problems/model-not-found","title":"Not found",'
    b'"status":404,"detail":"no model named missing"}'
)

REGISTRY_OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "registry", "version": "1"},
    "paths": {
        "/api/v1/registry/models": {
            "post": {
                "operationId": "register_model",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/RegisteredModelCreate"}
                        }
                    }
                },
                "responses": {"201": {"description": "Registered"}},
            }
        },
        "/api/v1/jobs": {
            "post": {"operationId": "submit_job", "responses": {"201": {"description": "ok"}}}
        },
        "/api/v1/registry/models/versions/{version_id}/transition": {
            "post": {"operationId": "transition_stage", "responses": {"200": {"description": "ok"}}}
        },
    },
    "components": {
        "schemas": {
            "RegisteredModelCreate": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "project_id": {"type": "string"}},
            }
        }
    },
}


@contextlib.asynccontextmanager
async def serving(app: Starlette, lifespan: str = "off", port: int = 0) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan=lifespan, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest.fixture(scope="session")
async def fake_registry() -> AsyncIterator[FakeRegistry]:
    registry = FakeRegistry()
    async with serving(registry.app()) as url:
        registry.url = url
        yield registry


@pytest.fixture
def registry(fake_registry: FakeRegistry) -> FakeRegistry:
    """The fake registry with a clean record and ready."""
    fake_registry.requests.clear()
    fake_registry.ready = True
    fake_registry.held.clear()
    return fake_registry


@contextlib.asynccontextmanager
async def running_gateway(
    settings: GatewaySettings, services: tuple[ServiceSpec, ...] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture(scope="session")
def gateway_settings(database_url: str, nats_url: str) -> Callable[..., GatewaySettings]:
    def make(**overrides: object) -> GatewaySettings:
        return GatewaySettings(
            database_url=database_url,
            nats_url=nats_url,
            admin_token=ADMIN_TOKEN,
            relay_poll_seconds=0.2,
            **overrides,
        )

    return make


@pytest.fixture(scope="session")
async def client(
    gateway_settings: Callable[..., GatewaySettings], fake_registry: FakeRegistry
) -> AsyncIterator[httpx.AsyncClient]:
    settings = gateway_settings(service_urls=every_backend(fake_registry.url))
    async with running_gateway(settings) as client:
        yield client


def every_backend(url: str) -> dict[str, str]:
    """Every service of the table served by one fake (`service_urls`)."""
    return {spec.name: url for spec in backends()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


VERIFIER = CredentialVerifier([LOCAL_INTERNAL_KEY])


def forwarded_caller(seen: dict) -> Caller:
    """The caller a forwarded request's credential names, verified as a service verifies it."""
    return VERIFIER.verify(seen["headers"].get(CREDENTIAL_HEADER.lower()))


ADMIN = bearer(ADMIN_TOKEN)


@pytest.fixture
def token_for(client: httpx.AsyncClient) -> Callable[[str], Awaitable[dict[str, str]]]:
    """Creates a token with the given role through the API; returns its auth headers."""

    async def create(role: str) -> dict[str, str]:
        reply = await client.post(
            "/api/v1/tokens",
            json={"subject": f"{role}-{uuid.uuid4().hex[:6]}", "role": role},
            headers=ADMIN,
        )
        assert reply.status_code == 201, reply.text
        return bearer(reply.json()["token"])

    return create


@pytest.fixture
async def project(client: httpx.AsyncClient) -> dict:
    reply = await client.post(
        "/api/v1/projects", json={"name": f"proj-{uuid.uuid4().hex[:8]}"}, headers=ADMIN
    )
    assert reply.status_code == 201, reply.text
    return reply.json()
