from collections.abc import AsyncIterator

import httpx
import nats
import pytest

from services.registry.app import create_app
from services.registry.settings import RegistrySettings
from shared.runtime import ServiceRuntime

ACTOR = "alice@example.com"


@pytest.fixture(scope="session")
def registry_settings(database_url: str, nats_url: str) -> RegistrySettings:
    return RegistrySettings(
        database_url=database_url, nats_url=nats_url, max_deliveries=3, relay_poll_seconds=0.2
    )


@pytest.fixture(scope="session")
async def registry_app(registry_settings: RegistrySettings) -> AsyncIterator:
    app = create_app(registry_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
def runtime(registry_app) -> ServiceRuntime:
    return registry_app.state.runtime


@pytest.fixture(scope="session")
async def client(registry_app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=registry_app),
        base_url="http://registry/api/v1/registry",
        headers={"X-Modelplane-Actor": ACTOR},
    ) as c:
        yield c


@pytest.fixture(scope="session")
async def nc(nats_url: str) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


@pytest.fixture
async def model(client: httpx.AsyncClient) -> dict:
    """A fresh model in a project of its own."""
    import uuid  # noqa: PLC0415

    r = await client.post(
        "/models", json={"name": f"model-{uuid.uuid4().hex[:8]}", "project_id": str(uuid.uuid4())}
    )
    assert r.status_code == 201, r.text
    return r.json()
