"""The serving service in-process, against real Postgres and NATS, with its KServe backend on the
fake Kubernetes API (Ray Serve is tested for real in test_ray_serve.py)."""

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from services.serving.integrations.kserve import KServeBackend, KServeConfig
from services.serving.settings import ServingSettings
from tests.credentials import GatewayCredential, known_project

ACTOR = "alice@example.com"
CLUSTER_TOKEN = "serving-cluster-token"
NAMESPACE = "models"
# The project the tests' endpoints are in: one the service takes to exist (tests/credentials.py).
PROJECT = uuid.UUID("3c2f7d1e-5a9b-4e60-8f14-7b6d2a0c9e53")


@pytest.fixture(scope="session")
def serving_cluster():
    from tests.fakes.kubernetes_api import FakeKubernetes

    with FakeKubernetes(token=CLUSTER_TOKEN) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def serving_settings(database_url: str, nats_url: str, serving_cluster) -> ServingSettings:
    return ServingSettings(
        database_url=database_url,
        nats_url=nats_url,
        relay_poll_seconds=0.2,
        max_deliveries=3,
        serving_frameworks=["ray_serve", "kserve"],
        serving_namespace=NAMESPACE,
        serving_watch_seconds=0.1,
        serving_watch_max_backoff_seconds=1.0,
        kubernetes_host=serving_cluster.url,
        kubernetes_token=CLUSTER_TOKEN,
    )


def kserve_only(settings: ServingSettings) -> dict:
    """The backends of a test app: KServe on the fake cluster (no Ray in these tests)."""
    return {
        "kserve": KServeBackend(
            KServeConfig(
                namespace=NAMESPACE, host=settings.kubernetes_host, token=settings.kubernetes_token
            )
        )
    }


@pytest.fixture(scope="module")
async def serving_app(serving_settings) -> AsyncIterator:
    """One per module: a module that restarts the service runs its own instances alone."""
    from services.serving.app import create_app

    app = create_app(serving_settings, kserve_only(serving_settings))
    known_project(app, PROJECT)
    async with app.router.lifespan_context(app):
        yield app


def client_of(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://serving/api/v1/serving",
        auth=GatewayCredential(ACTOR),
        timeout=30,
    )


@pytest.fixture(scope="module")
async def serving_client(serving_app) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(serving_app) as client:
        yield client
