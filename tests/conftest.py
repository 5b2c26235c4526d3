"""Real Postgres and NATS for every test: named by environment, found locally, in a container,
or embedded. Each session gets a fresh database and an empty bus."""

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.js.errors import NotFoundError

from shared.database_url import normalize_database_url
from shared.events.streams import DEAD_LETTER_STREAM, SERVICES, stream_name
from shared.local_infra import (
    create_database,
    docker_answers,
    drop_database,
    nats_container,
    postgres_container,
    start_embedded_nats,
    start_embedded_postgres,
    tcp_answers,
)

LOCAL_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
LOCAL_NATS_URL = "nats://127.0.0.1:4222"


@pytest.fixture(scope="session")
def database_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A SQLAlchemy async URL to a Postgres server's `postgres` database."""
    if url := os.environ.get("MODELPLANE_TEST_DATABASE_URL"):
        yield normalize_database_url(url, "MODELPLANE_TEST_DATABASE_URL")
    elif tcp_answers("127.0.0.1", 5432):
        yield LOCAL_POSTGRES_URL
    elif docker_answers():
        with postgres_container() as url:
            yield url
    else:
        data_dir = tmp_path_factory.mktemp("pg") / "data"
        server = start_embedded_postgres(data_dir, delete_on_stop=True)
        try:
            yield server.database_url("postgres")
        finally:
            server.stop()


@pytest.fixture(scope="session")
async def database_url(database_server_url: str) -> AsyncIterator[str]:
    """A database of this session's own, so runs never see each other's rows."""
    name = f"modelplane_test_{secrets.token_hex(6)}"
    url = await create_database(database_server_url, name)
    try:
        yield url
    finally:
        await drop_database(database_server_url, name)


@pytest.fixture(scope="session")
async def nats_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """A NATS server with JetStream, emptied of Modelplane's streams before any test uses it."""
    with contextlib.ExitStack() as stack:
        if url := os.environ.get("MODELPLANE_TEST_NATS_URL"):
            pass
        elif tcp_answers("127.0.0.1", 4222):
            url = LOCAL_NATS_URL
        elif docker_answers():
            url = stack.enter_context(nats_container())
        else:
            server = start_embedded_nats(tmp_path_factory.mktemp("nats"))
            stack.callback(server.stop)
            url = server.url
        await delete_modelplane_streams(url)
        yield url


@pytest.fixture(scope="session")
async def nc(nats_url: str) -> AsyncIterator[nats.aio.client.Client]:
    """One client of the test NATS server for the whole session."""
    client = await nats.connect(nats_url)
    yield client
    await client.close()


async def delete_modelplane_streams(url: str) -> None:
    """The machine-wide NATS outlives test runs; stale events would leak into this one."""
    client = await nats.connect(url, connect_timeout=5)
    try:
        js = client.jetstream()
        for name in [*map(stream_name, SERVICES), DEAD_LETTER_STREAM]:
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await client.close()
