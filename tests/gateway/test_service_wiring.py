"""The gateway is wired from the table of services: a service defined only here, with two
replicas, is forwarded to (requests spread over both), asked in `/readyz` and merged into the
OpenAPI document; in-process, and as the launcher runs it."""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from deploy.launcher import Platform
from shared.local_infra import free_port
from shared.service_table import SERVICES, ServiceSpec, by_name
from tests.gateway.conftest import ADMIN, FakeRegistry, every_backend, running_gateway, serving

DUMMY = ServiceSpec(
    "dummy",
    default_port=free_port(),
    path_roots=("/api/v1/dummies",),
    connections=2,
    readiness_path="/ready-now",
)


@dataclass
class DummyReplica:
    name: str
    ready: bool = True
    served: list[str] = field(default_factory=list)

    def app(self) -> Starlette:
        async def ready(_: Request) -> Response:
            return JSONResponse({}, status_code=200 if self.ready else 503)

        async def openapi(_: Request) -> Response:
            operation = {"operationId": "list_dummies", "responses": {"200": {"description": "ok"}}}
            return JSONResponse(
                {
                    "openapi": "3.1.0",
                    "info": {"title": "dummy", "version": "1"},
                    "paths": {"/api/v1/dummies": {"get": operation}},
                }
            )

        async def dummies(request: Request) -> Response:
            self.served.append(request.url.path)
            return JSONResponse({"replica": self.name, "path": request.url.path})

        return Starlette(
            routes=[
                Route("/ready-now", ready),
                Route("/openapi.json", openapi),
                Route("/api/v1/dummies{rest:path}", dummies, methods=["GET", "POST"]),
            ]
        )


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[list[DummyReplica], str]]:
    first, second = DummyReplica("first"), DummyReplica("second")
    async with serving(first.app()) as one, serving(second.app()) as two:
        yield [first, second], f"{one},{two}"


async def test_a_service_in_the_table_is_forwarded_asked_and_documented(
    gateway_settings, registry: FakeRegistry, replicas
) -> None:
    (first, second), urls = replicas
    settings = gateway_settings(service_urls={**every_backend(registry.url), "dummy": urls})
    async with running_gateway(settings, (*SERVICES, DUMMY)) as gateway:
        replies = [await gateway.get(f"/api/v1/dummies/{i}", headers=ADMIN) for i in range(6)]
        assert [reply.status_code for reply in replies] == [200] * 6
        # Spread over both replicas, each request to one.
        assert sorted(first.served + second.served) == [f"/api/v1/dummies/{i}" for i in range(6)]
        assert len(first.served) == len(second.served) == 3
        assert (await gateway.get("/api/v1/dummies")).status_code == 401  # authenticated first

        ready = await gateway.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["dummy"] is True
        first.ready = False  # one replica ready is enough to serve
        assert (await gateway.get("/readyz")).json()["checks"]["dummy"] is True
        second.ready = False
        ready = await gateway.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["dummy"] is False

        document = (await gateway.get("/api/v1/openapi.json")).json()
        assert document["paths"]["/api/v1/dummies"]["get"]["operationId"] == "list_dummies"
        assert "/api/v1/registry/models" in document["paths"]


async def test_a_replica_that_cannot_be_reached_is_passed_over(
    gateway_settings, registry: FakeRegistry, replicas
) -> None:
    (first, second), urls = replicas
    down = f"http://127.0.0.1:{free_port()}"
    settings = gateway_settings(
        service_urls={**every_backend(registry.url), "dummy": f"{down},{urls}"}
    )
    async with running_gateway(settings, (*SERVICES, DUMMY)) as gateway:
        replies = [await gateway.post(f"/api/v1/dummies/{i}", headers=ADMIN) for i in range(6)]
        ready = (await gateway.get("/readyz")).json()
    assert [reply.status_code for reply in replies] == [200] * 6
    assert len(first.served) + len(second.served) == 6  # each once, writes included
    assert ready["checks"]["dummy"] is True


async def test_a_path_outside_every_services_roots_is_not_forwarded(
    gateway_settings, registry: FakeRegistry, replicas
) -> None:
    (first, second), urls = replicas
    settings = gateway_settings(service_urls={**every_backend(registry.url), "dummy": urls})
    async with running_gateway(settings, (*SERVICES, DUMMY)) as gateway:
        reply = await gateway.get("/api/v1/dummiesx", headers=ADMIN)
    assert reply.status_code == 404
    assert first.served == second.served == []


async def test_a_service_the_launcher_runs_from_a_test_table_is_behind_the_gateway(
    database_url: str, nats_url: str, tmp_path: Path
) -> None:
    alpha = ServiceSpec("alpha", free_port(), ("/api/v1/alpha",), module_name="tests.dummy_service")
    table = (alpha, by_name()["gateway"])
    async with Platform(
        table=table,
        database_url=database_url,
        nats_url=nats_url,
        state_dir=tmp_path / "state",
        log_dir=tmp_path / "logs",
        start_tracking=False,
        ready_timeout=60,
        replicas={"alpha": 2},
    ) as running:
        admin = {"Authorization": f"Bearer {running.admin_token}"}
        async with httpx.AsyncClient(base_url=running.gateway_url, timeout=10) as gateway:
            served = [(await gateway.get("/api/v1/alpha", headers=admin)) for _ in range(4)]
            ready = await gateway.get("/readyz")
            document = (await gateway.get("/api/v1/openapi.json")).json()
        replica_pids = {running.pids[name] for name in running.pids if name.startswith("alpha")}
    assert [reply.status_code for reply in served] == [200] * 4
    assert {reply.json()["pid"] for reply in served} == replica_pids
    assert len(replica_pids) == 2
    assert ready.status_code == 200 and ready.json()["checks"]["alpha"] is True
    assert document["paths"]["/api/v1/alpha"]["get"]["operationId"] == "read_alpha"
