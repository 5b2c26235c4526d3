"""A service killed -9 under load: the launcher brings it back on its port while the others
keep serving; no acknowledged write is lost, no write retried with its Idempotency-Key is
applied twice, and every stored change is published once."""

import asyncio
import contextlib
import os
import secrets
import signal
import time
from pathlib import Path

import httpx
import pytest

from deploy.launcher import Platform, RestartPolicy
from shared.local_infra import create_database, drop_database
from tests.bus import stream_events

pytestmark = pytest.mark.e2e

WRITERS = 4
CREATED = "io.modelplane.registry.model_version.created.v1"


@pytest.fixture
async def platform(database_server_url, nats_url, tmp_path: Path):
    name = f"modelplane_supervision_{secrets.token_hex(4)}"
    database_url = await create_database(database_server_url, name)
    try:
        async with Platform(
            database_url=database_url,
            nats_url=nats_url,
            state_dir=tmp_path / "state",
            log_dir=tmp_path / "logs",
            start_tracking=False,
            ready_timeout=240,
            restart=RestartPolicy(first=0.2),
        ) as running:
            yield running
    finally:
        await drop_database(database_server_url, name)


async def test_a_registry_killed_under_load_comes_back_and_loses_nothing(platform, bus) -> None:
    headers = {"Authorization": f"Bearer {platform.admin_token}"}
    async with httpx.AsyncClient(base_url=platform.gateway_url, headers=headers, timeout=30) as api:
        r = await api.post("/api/v1/projects", json={"name": f"p-{secrets.token_hex(4)}"})
        assert r.status_code == 201, r.text
        r = await api.post(
            "/api/v1/registry/models", json={"name": "survivor", "project_id": r.json()["id"]}
        )
        assert r.status_code == 201, r.text
        model = r.json()["id"]

        acknowledged: list[str] = []
        write_statuses: list[tuple[float, int]] = []
        other_statuses: list[int] = []
        stop = asyncio.Event()

        async def write(worker: int) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                run = f"w{worker}-{n}"
                # A 503 is retried with the write's key: one that never reached the registry
                # goes through once it is back; one whose outcome is unknown is answered
                # again as it was, never applied twice.
                for _ in range(100):
                    with contextlib.suppress(httpx.TransportError):
                        reply = await api.post(
                            f"/api/v1/registry/models/{model}/versions",
                            json={"run_id": run},
                            headers={"Idempotency-Key": run},
                        )
                        write_statuses.append((time.monotonic(), reply.status_code))
                        if reply.status_code == 201:
                            acknowledged.append(reply.json()["id"])
                        if reply.status_code != 503 or "idempotent-replayed" in reply.headers:
                            break
                    await asyncio.sleep(0.1)
                await asyncio.sleep(0.01)

        async def use_the_others() -> None:
            n = 0
            while not stop.is_set():
                for path in (
                    "/api/v1/gpu-types",
                    "/api/v1/projects",
                    "/api/v1/serving/endpoints",
                    "/api/v1/pipelines",
                    "/api/v1/datasets",
                ):
                    other_statuses.append((await api.get(path)).status_code)
                n += 1
                r = await api.post("/api/v1/projects", json={"name": f"during-{n}"})
                other_statuses.append(r.status_code)
                await asyncio.sleep(0.05)

        load = [asyncio.create_task(write(i)) for i in range(WRITERS)]
        load.append(asyncio.create_task(use_the_others()))
        await asyncio.sleep(2)
        registry = platform.replicas["registry"][0]
        assert registry.process is not None
        os.kill(registry.process.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        await asyncio.sleep(1)
        await platform.wait_until_ready("registry", timeout=120)
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*load)

        assert platform.restarts("registry") == 1
        assert other_statuses and set(other_statuses) == {200, 201}
        assert any(status == 201 for at, status in write_statuses if at > killed_at + 1)
        # While the registry was down the gateway answered, and only with 201 or 503.
        assert {status for _, status in write_statuses} <= {201, 503}

        stored: list[str] = []
        runs: list[str] = []
        cursor = None
        while True:
            page = (
                await api.get(
                    f"/api/v1/registry/models/{model}/versions",
                    params={"limit": 100, **({"cursor": cursor} if cursor else {})},
                )
            ).json()
            stored += [v["id"] for v in page["items"]]
            runs += [v["run_id"] for v in page["items"]]
            if not (cursor := page["next_cursor"]):
                break

    assert set(acknowledged) <= set(stored), "an acknowledged write was lost"
    assert len(stored) == len(set(stored))
    assert len(runs) == len(set(runs)), "a retried write was applied twice"
    deadline = time.monotonic() + 30
    while True:
        events = [e for e in await stream_events(bus, "REGISTRY") if e.type == CREATED]
        published = [e.subject for e in events if e.subject in set(stored)]
        if len(published) >= len(stored) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert sorted(published) == sorted(stored), "each stored version is published exactly once"
