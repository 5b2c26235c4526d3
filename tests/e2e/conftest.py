"""The platform as `make up` runs it: each service its own process, on this session's Postgres
(a database of its own) and NATS, reached only through the gateway over HTTP."""

import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import nats
import pytest

from deploy.launcher import Platform
from shared.local_infra import create_database, drop_database

PLATFORM_TEST_TIMEOUT = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test of a module also waits for its platform to start (a minute or more on
    a loaded two-core machine, the MLflow server's imports the longest part)."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(PLATFORM_TEST_TIMEOUT))


@asynccontextmanager
async def running_platform(
    database_server_url: str,
    nats_url: str,
    tmp_path_factory,
    written: Callable[[str], str] = str,
    **options,
) -> AsyncIterator[Platform]:
    """A platform on a database of its own, dropped afterwards; it is given the database's URL
    as `written` writes it, and `options` go to `Platform`."""
    name = f"modelplane_e2e_{secrets.token_hex(6)}"
    database_url = written(await create_database(database_server_url, name))
    logs = tmp_path_factory.mktemp("platform-logs")
    state = tmp_path_factory.mktemp("platform-state")
    try:
        async with Platform(
            database_url=database_url,
            nats_url=nats_url,
            log_dir=logs,
            state_dir=state,
            tracking_workers=1,
            ready_timeout=240,
            # Root's test folders are out of an unprivileged user's reach: jobs here run as
            # the tests' user (test_jobs.py runs them as the unprivileged one).
            env={"MODELPLANE_JOBS_RUN_AS": ""},
            **options,
        ) as running:
            yield running
    finally:
        await drop_database(database_server_url, name)
        # The MLflow tracking server's own database, beside the platform's.
        await drop_database(database_server_url, f"{name}_mlflow")


# Module scope: the platform's registry shares the durable consumers of the in-process registry
# that other tests run, so it must be gone before they start.
@pytest.fixture(scope="module")
async def platform(database_server_url, nats_url, tmp_path_factory) -> AsyncIterator[Platform]:
    async with running_platform(database_server_url, nats_url, tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
async def admin(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=platform.gateway_url,
        headers={"Authorization": f"Bearer {platform.admin_token}"},
        timeout=30,
    ) as client:
        yield client


@pytest.fixture(scope="session")
async def bus(nats_url: str) -> AsyncIterator[nats.aio.client.Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()
