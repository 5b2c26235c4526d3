"""`make up`'s platform starts and is ready with the database URL in each form users write."""

import secrets
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from deploy.launcher import Platform
from shared.local_infra import create_database, drop_database

pytestmark = pytest.mark.e2e


def as_written(url: str, scheme: str, **query: str) -> str:
    written = make_url(url).set(drivername=scheme)
    written = written.update_query_dict(query)
    return written.render_as_string(hide_password=False)


@pytest.mark.parametrize(
    ("scheme", "query"),
    [
        ("postgresql", {}),
        ("postgres", {"sslmode": "prefer"}),
        ("postgresql+asyncpg", {}),
        ("postgresql+psycopg", {"sslmode": "disable"}),
    ],
)
async def test_the_platform_is_ready_with_the_url_as_written(
    scheme: str, query: dict[str, str], database_server_url: str, nats_url: str, tmp_path: Path
) -> None:
    name = f"modelplane_url_{secrets.token_hex(4)}"
    created = await create_database(database_server_url, name)
    written = as_written(created, scheme, **query)
    assert written.startswith(f"{scheme}://")
    try:
        async with (
            Platform(
                database_url=written,
                nats_url=nats_url,
                state_dir=tmp_path / "state",
                log_dir=tmp_path / "logs",
                start_tracking=False,
                ready_timeout=240,
            ) as platform,
            httpx.AsyncClient(base_url=platform.gateway_url, timeout=10) as client,
        ):
            assert (await client.get("/readyz")).status_code == 200
            projects = await client.get(
                "/api/v1/projects",
                headers={"Authorization": f"Bearer {platform.admin_token}"},
            )
        assert projects.status_code == 200
    finally:
        await drop_database(database_server_url, name)
