"""The outbox and inbox's migrations in shared/, run in each service's schema after its own."""

import asyncio
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from alembic import command

from services.registry.models import metadata
from shared.db import connect_raw, schema_metadata
from shared.local_infra import create_database, drop_database
from shared.migrations import MESSAGING_VERSION_TABLE, alembic_config, apply_migrations
from tests.migrations import schema_differences

REGISTRY = Path(__file__).parents[1] / "services" / "registry" / "migrations"
NEWCOMER_ENV = """
from alembic import context
from sqlalchemy import MetaData

from shared.migrations import run_env

run_env(context, MetaData(schema="newcomer"))
"""


@pytest.fixture
async def database_url(database_server_url: str) -> AsyncIterator[str]:
    """A database of this test's own: the session's serves the running services' relays."""
    name = f"messaging_migrations_{secrets.token_hex(4)}"
    url = await create_database(database_server_url, name)
    try:
        yield url
    finally:
        await drop_database(database_server_url, name)


async def test_a_new_service_gets_its_outbox_and_inbox_without_a_migration_of_its_own(
    database_url: str, tmp_path
) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "env.py").write_text(NEWCOMER_ENV)

    await apply_migrations(tmp_path, database_url)
    await apply_migrations(tmp_path, database_url)  # a second start changes nothing

    assert await schema_differences(database_url, schema_metadata("newcomer")) == []
    assert await _messaging_version(database_url, "newcomer") == ["m0001"]


async def test_a_database_made_before_the_move_upgrades_and_keeps_its_events(
    database_url: str,
) -> None:
    # The registry's own history made its outbox, as every database before the move has it.
    await asyncio.to_thread(command.upgrade, alembic_config(REGISTRY, database_url), "head")
    conn = await connect_raw(database_url)
    try:
        await conn.execute(
            "INSERT INTO registry.outbox (id, subject, payload)"
            " VALUES ($1, 'registry.a.b', 'waiting')",
            uuid.uuid4(),
        )
    finally:
        await conn.close()

    await apply_migrations(REGISTRY, database_url)

    assert await schema_differences(database_url, metadata) == []
    assert await _messaging_version(database_url, "registry") == ["m0001"]
    conn = await connect_raw(database_url)
    try:
        assert await conn.fetchval("SELECT payload FROM registry.outbox") == b"waiting"
    finally:
        await conn.close()


async def _messaging_version(database_url: str, schema: str) -> list[str]:
    conn: asyncpg.Connection = await connect_raw(database_url)
    try:
        rows = await conn.fetch(f"SELECT version_num FROM {schema}.{MESSAGING_VERSION_TABLE}")
    finally:
        await conn.close()
    return [r["version_num"] for r in rows]
