"""The jobs service's migrations build exactly the tables models.py declares."""

from services.jobs.models import metadata
from tests.migrations import schema_differences


async def test_the_migrated_schema_matches_the_models(jobs_app, database_url: str) -> None:
    # `jobs_app` started the service, which applied its migrations.
    assert await schema_differences(database_url, metadata) == []
