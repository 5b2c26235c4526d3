"""Two registry and two gateway processes: concurrent promotions through both gateways still
leave one production version per model, and every stored transition is published once."""

import asyncio
import secrets
import time
from pathlib import Path

import httpx
import pytest

from deploy.launcher import Platform
from shared.local_infra import create_database, drop_database
from tests.bus import stream_events

pytestmark = pytest.mark.e2e

MODELS = 3
VERSIONS = 4
TRANSITIONED = "io.modelplane.registry.model_version.transitioned.v1"


@pytest.fixture
async def platform(database_server_url, nats_url, tmp_path: Path):
    name = f"modelplane_replicas_{secrets.token_hex(4)}"
    database_url = await create_database(database_server_url, name)
    try:
        async with Platform(
            database_url=database_url,
            nats_url=nats_url,
            replicas={"registry": 2, "gateway": 2},
            state_dir=tmp_path / "state",
            log_dir=tmp_path / "logs",
            start_tracking=False,
            ready_timeout=240,
        ) as running:
            yield running
    finally:
        await drop_database(database_server_url, name)


async def test_concurrent_promotions_through_two_gateways_leave_one_in_production(
    platform, bus
) -> None:
    gateways = platform.service_urls("gateway")
    assert len(gateways) == 2 and len(platform.service_urls("registry")) == 2
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    clients = [httpx.AsyncClient(base_url=url, headers=headers, timeout=30) for url in gateways]
    try:
        first, second = clients
        r = await first.post("/api/v1/projects", json={"name": f"p-{secrets.token_hex(4)}"})
        assert r.status_code == 201, r.text
        project = r.json()["id"]
        versions: dict[str, list[str]] = {}
        for m in range(MODELS):
            client = clients[m % 2]
            r = await client.post(
                "/api/v1/registry/models", json={"name": f"m{m}", "project_id": project}
            )
            assert r.status_code == 201, r.text
            model = r.json()["id"]
            versions[model] = []
            for v in range(VERSIONS):
                r = await clients[v % 2].post(
                    f"/api/v1/registry/models/{model}/versions", json={"run_id": f"{m}-{v}"}
                )
                assert r.status_code == 201, r.text
                versions[model].append(r.json()["id"])

        async def promote(i: int, version: str) -> int:
            r = await clients[i % 2].post(
                f"/api/v1/registry/models/versions/{version}/transition",
                json={"stage": "production"},
            )
            return r.status_code

        everything = [v for vs in versions.values() for v in vs]
        statuses = await asyncio.gather(*(promote(i, v) for i, v in enumerate(everything)))
        assert set(statuses) <= {200, 409}, statuses
        assert statuses.count(200) >= MODELS

        stored = 0
        for model, ids in versions.items():
            r = await first.get(
                f"/api/v1/registry/models/{model}/versions", params={"stage": "production"}
            )
            assert r.json()["total"] == 1, f"model {model}: {r.json()['total']} in production"
            for version in ids:
                r = await second.get(f"/api/v1/registry/models/versions/{version}/transitions")
                stored += r.json()["total"]
    finally:
        for client in clients:
            await client.aclose()

    deadline = time.monotonic() + 30
    while True:
        events = [
            e
            for e in await stream_events(bus, "REGISTRY")
            if e.type == TRANSITIONED and e.subject in set(everything)
        ]
        if len(events) >= stored or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert len({e.id for e in events}) == len(events) == stored
