"""`make up`'s platform starts and is ready from a database URL as users write it. Every form
becoming the one the services use is tests/test_database_url.py's; this is the wiring."""

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.e2e.one_platform.conftest import WRITTEN_QUERY, WRITTEN_SCHEME, as_written

pytestmark = pytest.mark.e2e


def test_the_shared_platform_is_given_the_url_in_libpqs_form() -> None:
    written = make_url(as_written("postgresql+asyncpg://u@db/mp"))
    assert written.drivername == WRITTEN_SCHEME and dict(written.query) == WRITTEN_QUERY


async def test_the_platform_is_ready_from_the_url_as_written(platform, admin) -> None:
    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=10) as anonymous:
        assert (await anonymous.get("/readyz")).status_code == 200
    assert (await admin.get("/api/v1/projects")).status_code == 200
