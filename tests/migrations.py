"""Comparing a service's migrated schema with the tables its models.py declares."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import create_async_engine


async def schema_differences(database_url: str, metadata: MetaData) -> list:
    """What Alembic's autogenerate would change to make the database match the models."""
    schema = metadata.schema

    def include_name(name, type_, parent_names) -> bool:
        if type_ == "schema":
            return name == schema
        return not (type_ == "table" and name.startswith("alembic_version"))

    def diff(connection) -> list:
        context = MigrationContext.configure(
            connection,
            opts={"include_schemas": True, "include_name": include_name, "compare_type": True},
        )
        return compare_metadata(context, metadata)

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(diff)
    finally:
        await engine.dispose()
