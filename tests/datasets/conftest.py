"""The datasets service in-process, on the session's real Postgres and NATS."""

from pathlib import Path

import pytest

ACTOR = "alice@example.com"


@pytest.fixture(scope="session")
def datasets_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def sources(datasets_root: Path) -> Path:
    """The one directory versions may be made from by path."""
    path = datasets_root / "sources"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def datasets_settings(database_url: str, nats_url: str, datasets_root: Path, sources: Path):
    from services.datasets.settings import DatasetsSettings

    return DatasetsSettings(
        database_url=database_url,
        nats_url=nats_url,
        relay_poll_seconds=0.2,
        datasets_data_dir=datasets_root / "data",
        datasets_source_roots=[sources],
        datasets_upload_max_bytes=2 * 1024 * 1024,
    )


@pytest.fixture(scope="module")
async def datasets_app(datasets_settings):
    from services.datasets.app import create_app

    app = create_app(datasets_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
async def datasets_client(datasets_app):
    import httpx

    from tests.credentials import GatewayCredential

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=datasets_app),
        base_url="http://datasets/api/v1",
        auth=GatewayCredential(ACTOR),
        timeout=60,
    ) as c:
        yield c
