"""The hand-written migrations build exactly the tables models.py declares."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from services.gateway.models import SCHEMA, metadata


async def test_the_migrated_schema_matches_the_models(client, database_url: str) -> None:
    # `client` started the gateway, which applied its migrations.
    def include_name(name, type_, parent_names) -> bool:  # noqa: ANN001
        if type_ == "schema":
            return name == SCHEMA
        return not (type_ == "table" and name == "alembic_version")

    def diff(connection) -> list:  # noqa: ANN001
        context = MigrationContext.configure(
            connection,
            opts={"include_schemas": True, "include_name": include_name, "compare_type": True},
        )
        return compare_metadata(context, metadata)

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await engine.dispose()
