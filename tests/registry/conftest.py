import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from alembic import command

from services.registry.app import MIGRATIONS, create_app
from services.registry.settings import RegistrySettings
from shared.db import connect_raw
from shared.local_infra import create_database, drop_database
from shared.migrations import alembic_config
from shared.runtime import ServiceRuntime
from tests.credentials import GatewayCredential, known_project

ACTOR = "alice@example.com"


@pytest.fixture(scope="session")
def registry_settings(database_url: str, nats_url: str) -> RegistrySettings:
    return RegistrySettings(
        database_url=database_url, nats_url=nats_url, max_deliveries=3, relay_poll_seconds=0.2
    )


# The package's own: its consumers leave the bus when tests/registry ends, so they answer no
# later package's commands (pipelines' stages, serving's events) in a whole-suite run.
@pytest.fixture(scope="package")
async def registry_app(registry_settings: RegistrySettings) -> AsyncIterator:
    app = create_app(registry_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="package")
def runtime(registry_app) -> ServiceRuntime:
    return registry_app.state.runtime


def client_of(app) -> httpx.AsyncClient:
    """A client of the registry's API served by `app` in-process, acting as `ACTOR`, a platform
    admin, with a credential as the gateway signs it."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://registry/api/v1/registry",
        auth=GatewayCredential(ACTOR),
    )


async def new_versions(client: httpx.AsyncClient, model: dict, n: int) -> list[dict]:
    return [
        (await client.post(f"/models/{model['id']}/versions", json={})).json() for _ in range(n)
    ]


async def promote(
    client: httpx.AsyncClient, version: dict, stage: str = "production"
) -> httpx.Response:
    return await client.post(f"/models/versions/{version['id']}/transition", json={"stage": stage})


@pytest.fixture(scope="package")
async def client(registry_app) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(registry_app) as c:
        yield c


@pytest.fixture
def project(registry_app) -> str:
    """A fresh project the registry knows to exist."""
    return known_project(registry_app)


@pytest.fixture
async def model(client: httpx.AsyncClient, project: str) -> dict:
    """A fresh model in a project of its own."""
    import uuid

    r = await client.post(
        "/models", json={"name": f"model-{uuid.uuid4().hex[:8]}", "project_id": project}
    )
    assert r.status_code == 201, r.text
    return r.json()


class ScratchDatabase:
    """A database of its own, migrated by hand to the revisions a test names."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._config = alembic_config(MIGRATIONS, url)

    async def upgrade(self, revision: str) -> None:
        await asyncio.to_thread(command.upgrade, self._config, revision)

    async def downgrade(self, revision: str) -> None:
        await asyncio.to_thread(command.downgrade, self._config, revision)

    async def execute(self, sql: str, *args: object) -> None:
        conn = await connect_raw(self.url)
        try:
            await conn.execute(sql, *args)
        finally:
            await conn.close()

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        conn = await connect_raw(self.url)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()


@pytest.fixture
async def scratch(database_server_url: str) -> AsyncIterator[ScratchDatabase]:
    name = f"registry_upgrade_{secrets.token_hex(4)}"
    url = await create_database(database_server_url, name)
    try:
        yield ScratchDatabase(url)
    finally:
        await drop_database(database_server_url, name)
