"""The datasets schema its migrations make is the one its models declare."""

from services.datasets.models import metadata
from tests.migrations import schema_differences


async def test_migrations_match_the_models(datasets_app, database_url):
    assert await schema_differences(database_url, metadata) == []
