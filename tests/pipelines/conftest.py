"""The pipelines service in-process, on the session's real Postgres and NATS."""

import uuid

import pytest

ACTOR = "alice@example.com"
# The project the tests' pipelines are in; every test app knows it exists.
PROJECT = "0b7c5a1e-2f64-4d7b-9e35-6c1d2a8f4e90"


def create_app(settings):
    """The pipelines service, taking PROJECT to exist as if the gateway had said so."""
    from services.pipelines.app import create_app

    app = create_app(settings)
    app.state.projects.learned(uuid.UUID(PROJECT))
    return app


@pytest.fixture(scope="session")
def pipelines_settings(database_url: str, nats_url: str):
    from services.pipelines.settings import PipelinesSettings

    return PipelinesSettings(
        database_url=database_url,
        nats_url=nats_url,
        relay_poll_seconds=0.2,
        pipelines_deadline_sweep_seconds=0.2,
    )


# Per module: a test module that stops and starts its own service has no other one beside it.
@pytest.fixture(scope="module")
async def pipelines_app(pipelines_settings):
    app = create_app(pipelines_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
async def pipelines_client(pipelines_app):
    import httpx

    from tests.credentials import GatewayCredential

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=pipelines_app),
        base_url="http://pipelines/api/v1",
        auth=GatewayCredential(ACTOR),
        timeout=30,
    ) as c:
        yield c
