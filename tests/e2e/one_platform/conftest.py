"""The modules here share one platform, started once for the package, as a team shares a
deployment: each test makes its own projects, tokens and names. The fuzzer runs last, since its
writes are random."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from deploy.launcher import Platform
from tests.e2e.clients import ADMIN_TOKEN
from tests.e2e.conftest import running_platform

# The database URL in the form libpq's users write it (test_database_urls.py).
WRITTEN_SCHEME = "postgres"
WRITTEN_QUERY = {"sslmode": "prefer"}


def as_written(url: str) -> str:
    written = make_url(url).set(drivername=WRITTEN_SCHEME).update_query_dict(WRITTEN_QUERY)
    return written.render_as_string(hide_password=False)


@pytest.fixture(scope="package")
async def platform(database_server_url, nats_url, tmp_path_factory) -> AsyncIterator[Platform]:
    async with running_platform(
        database_server_url,
        nats_url,
        tmp_path_factory,
        written=as_written,
        admin_token=ADMIN_TOKEN,
    ) as running:
        yield running


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [i for i, item in enumerate(items) if here in item.path.parents]
    ordered = sorted(
        (items[i] for i in mine), key=lambda item: item.path.stem == "test_schemathesis"
    )
    for i, item in zip(mine, ordered, strict=True):
        items[i] = item
