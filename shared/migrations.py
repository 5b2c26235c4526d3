"""Alembic, one environment per service: each creates, versions and sees only its own schema.

The outbox and inbox every service has are migrated once for all, by the environment in
`shared/messaging_migrations`, run in each service's schema after its own (with a version
table of its own): a change to them is one revision there, not one in every service.
"""

import asyncio
import zlib
from pathlib import Path
from types import ModuleType

import asyncpg
import sqlalchemy as sa
from alembic import command, op
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import NAMING_CONVENTION, connect_raw, schema_metadata
from shared.inbox import inbox_table

MESSAGING_MIGRATIONS = Path(__file__).parent / "messaging_migrations"
MESSAGING_VERSION_TABLE = "alembic_version_messaging"


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("version_locations", str(migrations_dir / "versions"))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = database_url
    return config


async def ensure_database(database_url: str) -> None:
    """Create the service's database if the server does not have it yet."""
    url = make_url(database_url)
    try:
        conn = await connect_raw(url)
    except asyncpg.InvalidCatalogNameError:
        admin = await connect_raw(url.set(database="postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{url.database}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            pass  # made meanwhile by a service starting beside this one (a race on the catalog)
        finally:
            await admin.close()
    else:
        await conn.close()


async def apply_migrations(migrations_dir: Path, database_url: str) -> None:
    """Upgrade the service's schema to head, then its outbox and inbox (Alembic runs its own
    loop, so in a thread)."""
    await ensure_database(database_url)
    config = alembic_config(migrations_dir, database_url)
    await asyncio.to_thread(command.upgrade, config, "head")
    messaging = alembic_config(MESSAGING_MIGRATIONS, database_url)
    messaging.attributes["schema"] = config.attributes["schema"]  # named by the service's env
    await asyncio.to_thread(command.upgrade, messaging, "head")


def run_env(
    context: ModuleType, metadata: MetaData, version_table: str = "alembic_version"
) -> None:
    """The body of every service's `migrations/env.py`, given `alembic.context`."""
    schema = metadata.schema
    assert schema, "a service's metadata names its schema"
    context.config.attributes["schema"] = schema
    url = context.config.attributes.get("database_url") or context.config.get_main_option(
        "sqlalchemy.url"
    )
    if url is None:
        raise RuntimeError("Alembic was given no database URL")

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        if type_ == "schema":
            return name == schema
        return True

    def migrate(connection: Connection) -> None:
        # Serialise concurrent starts of the same service (replicas, tests) on this schema.
        connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": zlib.crc32(schema.encode())}
        )
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=version_table,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(migrate)
        finally:
            await engine.dispose()

    asyncio.run(run())


def run_messaging_env(context: ModuleType) -> None:
    """The body of `shared/messaging_migrations/env.py`: the schema is the service's."""
    run_env(context, schema_metadata(context.config.attributes["schema"]), MESSAGING_VERSION_TABLE)


def create_messaging_tables(schema: str) -> None:
    """Called from a service's first migration: its outbox as it was then (with the NOTIFY
    trigger that woke the relay until `drop_outbox_notify`, and the `published_at` mark until
    `remove_published_outbox_rows`) and its inbox."""
    bind = op.get_bind()
    tables = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger, sa.Identity(always=True), primary_key=True),
        sa.Column("id", sa.Uuid, nullable=False, unique=True),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column("published_at", sa.DateTime(timezone=True)),
        schema=schema,
    )
    _create_unpublished_index(schema)
    inbox_table(tables).create(bind)
    for statement in _notify_trigger_sql(schema):
        op.execute(statement)


def _create_unpublished_index(schema: str) -> None:
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["seq"],
        schema=schema,
        postgresql_where=sa.text("published_at IS NULL"),
    )


def _notify_trigger_sql(schema: str) -> list[str]:
    return [
        f"""
        CREATE OR REPLACE FUNCTION "{schema}".notify_outbox() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{schema}_outbox', '');
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE TRIGGER outbox_notify AFTER INSERT ON "{schema}".outbox
        FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".notify_outbox()
        """,
    ]


def drop_outbox_notify(schema: str) -> None:
    """The relay is handed each commit's events directly now. A NOTIFY also took a lock that
    serialised every notifying commit in the database, so it goes."""
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".notify_outbox() CASCADE')


def restore_outbox_notify(schema: str) -> None:
    for statement in _notify_trigger_sql(schema):
        op.execute(statement)


def remove_published_outbox_rows(schema: str) -> None:
    """The relay removes a row once JetStream acked its event, instead of marking it published:
    the rows marked so far go, and with them the mark and its index."""
    op.execute(f'DELETE FROM "{schema}".outbox WHERE published_at IS NOT NULL')
    op.drop_index("ix_outbox_unpublished", table_name="outbox", schema=schema)
    op.drop_column("outbox", "published_at", schema=schema)


def restore_outbox_published_at(schema: str) -> None:
    """Back to marking: the rows left are those not yet published."""
    op.add_column("outbox", sa.Column("published_at", sa.DateTime(timezone=True)), schema=schema)
    _create_unpublished_index(schema)


def add_outbox_retries(schema: str) -> None:
    """An event JetStream refuses stays with how often it was refused, why, and when the relay
    tries it again. Nullable or with a constant default: no row is rewritten."""
    op.add_column(
        "outbox",
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        schema=schema,
    )
    op.add_column("outbox", sa.Column("last_error", sa.Text), schema=schema)
    op.add_column("outbox", sa.Column("retry_at", sa.DateTime(timezone=True)), schema=schema)


def drop_outbox_retries(schema: str) -> None:
    """Back to trying every refused event at every sweep."""
    for column in ("retry_at", "last_error", "attempts"):
        op.drop_column("outbox", column, schema=schema)


def drop_messaging_tables(schema: str) -> None:
    op.execute(f'DROP FUNCTION IF EXISTS "{schema}".notify_outbox() CASCADE')
    op.drop_table("outbox", schema=schema)
    op.drop_table("inbox", schema=schema)
