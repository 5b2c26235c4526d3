"""The whole platform through a 10 s NATS outage under concurrent writes through the gateway:
every write succeeds, the gateway's and every service's `/readyz` stay 200 (degraded), the
outboxes drain once the bus is back and each stored change is published once, and the
services' logs are not flooded with a traceback per retry. Also: no service's own port takes
a request without the gateway's credential."""

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from deploy.launcher import Platform
from shared.db import connect_raw
from shared.errors import PROBLEM_BASE
from shared.local_infra import create_database, drop_database
from shared.service_table import SERVICES, backends
from tests.test_bus_outage import PrivateNats

pytestmark = pytest.mark.e2e

OUTAGE_SECONDS = 10.0
WRITERS = 4
# A failure that recurs is logged once, then counted (shared/repeats.py): a few tracebacks per
# service at most, where each relay poll and reconnection attempt logged one before.
MOST_TRACEBACKS = 3


@pytest.fixture(scope="module")
async def outage_platform(
    database_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Platform, PrivateNats, str]]:
    tmp_path = tmp_path_factory.mktemp("bus-outage")
    bus = PrivateNats(tmp_path / "nats")
    bus.start()
    name = f"modelplane_bus_outage_{secrets.token_hex(4)}"
    database_url = await create_database(database_server_url, name)
    try:
        async with Platform(
            database_url=database_url,
            nats_url=bus.url,
            state_dir=tmp_path / "state",
            log_dir=tmp_path / "logs",
            start_tracking=False,
            ready_timeout=240,
            env={"MODELPLANE_RELAY_POLL_SECONDS": "0.2"},
        ) as running:
            yield running, bus, database_url
    finally:
        bus.stop()
        await drop_database(database_server_url, name)


async def unpublished(database_url: str) -> dict[str, int]:
    """Each service's outbox rows still to publish."""
    conn: asyncpg.Connection = await connect_raw(database_url)
    try:
        return {
            spec.name: await conn.fetchval(f'SELECT count(*) FROM "{spec.name}".outbox')
            for spec in SERVICES
        }
    finally:
        await conn.close()


async def test_writes_and_readiness_survive_a_bus_outage_under_load(outage_platform) -> None:
    platform, bus, database_url = outage_platform
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    probed = {"gateway": platform.gateway_url} | {
        spec.name: platform.service_url(spec.name) for spec in backends()
    }
    async with (
        httpx.AsyncClient(base_url=platform.gateway_url, headers=headers, timeout=30) as api,
        httpx.AsyncClient(timeout=10) as plain,
    ):
        r = await api.post("/api/v1/projects", json={"name": f"p-{secrets.token_hex(4)}"})
        assert r.status_code == 201, r.text
        r = await api.post(
            "/api/v1/registry/models", json={"name": "outage", "project_id": r.json()["id"]}
        )
        assert r.status_code == 201, r.text
        model = r.json()["id"]

        written: list[tuple[int, str | None]] = []
        readiness: dict[str, list[tuple[int, dict]]] = {name: [] for name in probed}
        stop = asyncio.Event()

        async def write(worker: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                reply = await api.post(
                    f"/api/v1/registry/models/{model}/versions", json={"run_id": f"w{worker}-{n}"}
                )
                ok = reply.status_code == 201
                written.append((reply.status_code, reply.json()["id"] if ok else reply.text))
                await asyncio.sleep(0.02)

        async def probe(name: str, url: str) -> None:
            while not stop.is_set():
                reply = await plain.get(f"{url}/readyz")
                readiness[name].append((reply.status_code, reply.json()))
                await asyncio.sleep(0.5)

        tasks = [asyncio.create_task(write(i)) for i in range(WRITERS)]
        tasks += [asyncio.create_task(probe(name, url)) for name, url in probed.items()]
        await asyncio.sleep(2)
        bus.stop()
        before = len(written)
        await asyncio.sleep(OUTAGE_SECONDS)
        during = len(written) - before
        bus.start()
        await asyncio.sleep(3)
        stop.set()
        await asyncio.gather(*tasks)

    failed = [(status, detail) for status, detail in written if status != 201]
    assert not failed, failed[:5]
    assert during > 20, "writes went on while the bus was away"
    for name, seen in readiness.items():
        assert all(status == 200 and body["ready"] for status, body in seen), (name, seen)
    assert any(body["degraded"] for _, body in readiness["registry"]), readiness["registry"]

    deadline = time.monotonic() + 60
    while any((left := await unpublished(database_url)).values()):
        assert time.monotonic() < deadline, left
        await asyncio.sleep(0.5)

    published = await bus.versions_published()
    assert published == len(written), "each stored version is published exactly once"

    assert platform.log_dir is not None
    for log in sorted(platform.log_dir.glob("*.log")):
        tracebacks = log.read_text(errors="replace").count("Traceback")
        assert tracebacks <= MOST_TRACEBACKS, f"{log.name}: {tracebacks} tracebacks"


async def test_no_service_takes_a_request_without_the_gateways_credential(
    outage_platform,
) -> None:
    platform, _, _ = outage_platform
    async with httpx.AsyncClient(timeout=10) as anyone:
        for spec in backends():
            url = platform.service_url(spec.name)
            for root in spec.path_roots:
                for method in ("GET", "POST"):
                    for headers in ({}, {"X-Modelplane-Actor": "admin"}):
                        reply = await anyone.request(
                            method, f"{url}{root}", json={}, headers=headers
                        )
                        assert reply.status_code == 401, (spec.name, method, root, reply.text)
                        assert reply.json()["type"].startswith(PROBLEM_BASE)
