"""Readiness includes the registry's; the OpenAPI document includes the registry's paths."""

import httpx

from shared.local_infra import free_port
from shared.service_table import backends
from tests.gateway.conftest import FakeRegistry, running_gateway, serving


async def test_healthz_answers(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200


async def test_ready_when_the_gateway_and_the_registry_are(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    reply = await client.get("/readyz")
    assert reply.status_code == 200, reply.text
    assert reply.json()["checks"] == {
        "database": True,
        "nats": True,
        "outbox_relay": True,
        **{spec.name: True for spec in backends()},  # registry, jobs, ...
    }
    registry.ready = False
    reply = await client.get("/readyz")
    assert reply.status_code == 503
    assert reply.json()["checks"]["registry"] is False


async def test_openapi_documents_the_gateway_and_the_registry(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/openapi.json")
    assert reply.status_code == 200
    document = reply.json()
    paths = set(document["paths"])
    assert {"/api/v1/projects", "/api/v1/tokens", "/api/v1/registry/models"} <= paths
    assert "/api/v1/registry/models/versions/{version_id}/transition" in document["paths"]
    assert "RegisteredModelCreate" in document["components"]["schemas"]
    assert document["paths"]["/api/v1/registry/models"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "/api/v1/jobs" in document["paths"]
    assert (await client.get("/api/v1/docs")).status_code == 200


async def test_with_the_registry_down_readyz_is_503_and_openapi_has_the_gateways_part(
    gateway_settings,
) -> None:
    settings = gateway_settings(registry_url=f"http://127.0.0.1:{free_port()}")
    async with running_gateway(settings) as down:
        ready = await down.get("/readyz")
        document = (await down.get("/api/v1/openapi.json")).json()
    assert ready.status_code == 503
    assert ready.json()["checks"]["registry"] is False
    assert ready.json()["checks"]["database"] is True
    assert "/api/v1/projects" in document["paths"]
    assert not any(path.startswith("/api/v1/registry") for path in document["paths"])


async def test_a_registry_that_comes_up_after_the_gateway_is_in_the_next_openapi_document(
    gateway_settings, fake_registry: FakeRegistry
) -> None:
    port = free_port()
    settings = gateway_settings(registry_url=f"http://127.0.0.1:{port}", jobs_url=fake_registry.url)
    async with running_gateway(settings) as gateway:
        before = (await gateway.get("/api/v1/openapi.json")).json()
        async with serving(FakeRegistry().app(), port=port):
            after = (await gateway.get("/api/v1/openapi.json")).json()
    assert "/api/v1/jobs" in before["paths"]
    assert "/api/v1/registry/models" not in before["paths"]
    assert "/api/v1/registry/models/versions/{version_id}/transition" in after["paths"]
