import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from services.jobs.integrations.executor import ExecutionStatus, Executor

WaitFinished = Callable[[Executor, str], Awaitable[ExecutionStatus]]
JOBS_TEST_TIMEOUT = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test here may wait for the session's MLflow server to start (a minute or more on a
    loaded two-core machine) and then for a job that imports MLflow."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(JOBS_TEST_TIMEOUT))


@pytest.fixture
def wait_finished() -> WaitFinished:
    async def wait(executor: Executor, handle: str, timeout: float = 20.0) -> ExecutionStatus:
        deadline = time.monotonic() + timeout
        while True:
            status = await executor.status(handle)
            if status.finished:
                return status
            assert time.monotonic() < deadline, f"{handle} still {status} after {timeout}s"
            await asyncio.sleep(0.05)

    return wait


CLUSTER_TOKEN = "jobs-cluster-token"
# The project the session's jobs are submitted to; the jobs services of these tests know it.
JOBS_PROJECT = uuid.UUID("6a0b5e1c-7f43-4c1e-9d2a-3b8f0c9e4d21")


@pytest.fixture(scope="session")
def jobs_cluster():
    """The Kubernetes API the session's jobs service sends its Kubernetes jobs to."""
    from tests.fakes.kubernetes_api import FakeKubernetes

    with FakeKubernetes(token=CLUSTER_TOKEN) as cluster:
        yield cluster


@pytest.fixture(scope="session")
async def tracking_server(
    database_server_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
):
    """The MLflow tracking server the session's jobs service and its jobs use, as under
    `make up`: on Postgres (a database beside the session's), serving artifacts."""
    from deploy.tracking import TrackingServer
    from shared.local_infra import drop_database, free_port

    server = TrackingServer(database_url, tmp_path_factory.mktemp("mlflow"), free_port(), workers=1)
    await server.start(timeout=300)
    try:
        yield server.url
    finally:
        await server.stop()
        await drop_database(database_server_url, server.database)


@pytest.fixture(scope="session")
def jobs_settings(
    database_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    jobs_cluster,
    tracking_server: str,
):
    from services.jobs.settings import JobsSettings

    return JobsSettings(
        database_url=database_url,
        nats_url=nats_url,
        relay_poll_seconds=0.2,
        mlflow_tracking_uri=tracking_server,
        jobs_state_dir=tmp_path_factory.mktemp("jobs-state"),
        jobs_watch_seconds=0.2,
        jobs_cancel_grace_seconds=2.0,
        # dev and stg have no IntegrationConfig in these tests (the gateway's tests configure
        # prod only), so these defaults decide: stg on Kubernetes, dev locally.
        jobs_executors={"stg": "kubernetes"},
        kubernetes_host=jobs_cluster.url,
        kubernetes_token=CLUSTER_TOKEN,
        kubernetes_namespace="ml-jobs",
        # The jobs here run this session's interpreter, which the unprivileged user may not
        # reach; test_local_limits.py runs jobs as that user.
        jobs_run_as="",
    )


@pytest.fixture(scope="session")
async def jobs_app(jobs_settings):
    from services.jobs.app import create_app
    from tests.credentials import known_project

    app = create_app(jobs_settings)
    known_project(app, JOBS_PROJECT)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def jobs_client(jobs_app):
    import httpx

    from tests.credentials import GatewayCredential

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=jobs_app),
        base_url="http://jobs/api/v1",
        auth=GatewayCredential("alice@example.com"),
        timeout=30,
    ) as c:
        yield c
