"""The hand-written migrations build exactly the tables models.py declares."""

from services.gateway.models import metadata
from tests.migrations import schema_differences


async def test_the_migrated_schema_matches_the_models(client, database_url: str) -> None:
    # `client` started the gateway, which applied its migrations.
    assert await schema_differences(database_url, metadata) == []
