"""`Idempotency-Key` through the real platform with two gateway processes: a retry through
either gateway gets the first reply, the registry stores and publishes the write once; another
body is 422; another caller's key is theirs; a key past its time is new again."""

import asyncio
import secrets
from pathlib import Path

import httpx
import pytest

from deploy.launcher import Platform
from shared.errors import PROBLEM_BASE
from shared.local_infra import create_database, drop_database
from tests.bus import stream_events

pytestmark = pytest.mark.e2e

KEY_SECONDS = 6


@pytest.fixture
async def platform(database_server_url, nats_url, tmp_path: Path):
    name = f"modelplane_idem_{secrets.token_hex(4)}"
    database_url = await create_database(database_server_url, name)
    try:
        async with Platform(
            database_url=database_url,
            nats_url=nats_url,
            replicas={"gateway": 2},
            state_dir=tmp_path / "state",
            log_dir=tmp_path / "logs",
            start_tracking=False,
            ready_timeout=240,
            env={
                "MODELPLANE_IDEMPOTENCY_KEY_SECONDS": str(KEY_SECONDS),
                "MODELPLANE_IDEMPOTENCY_PRUNE_SECONDS": "1",
            },
        ) as running:
            yield running
    finally:
        await drop_database(database_server_url, name)


async def test_retries_through_either_gateway_write_once(platform, bus) -> None:
    first_url, second_url = platform.service_urls("gateway")
    admin = {"Authorization": f"Bearer {platform.admin_token}"}
    one = httpx.AsyncClient(base_url=first_url, headers=admin, timeout=30)
    two = httpx.AsyncClient(base_url=second_url, headers=admin, timeout=30)
    try:
        r = await one.post("/api/v1/projects", json={"name": f"p-{secrets.token_hex(4)}"})
        assert r.status_code == 201, r.text
        project = r.json()["id"]
        r = await one.post("/api/v1/tokens", json={"subject": "other", "role": "editor"})
        assert r.status_code == 201, r.text
        other = {"Authorization": f"Bearer {r.json()['token']}"}

        key = {"Idempotency-Key": f"register-{secrets.token_hex(8)}"}
        body = {"name": "churn", "project_id": project}
        first = await one.post("/api/v1/registry/models", json=body, headers=key)
        again = await two.post("/api/v1/registry/models", json=body, headers=key)
        assert first.status_code == again.status_code == 201, again.text
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["idempotent-replayed"] == "true"
        model = first.json()["id"]

        reused = await two.post("/api/v1/registry/models", json={**body, "name": "x"}, headers=key)
        assert reused.status_code == 422
        assert reused.json()["type"] == PROBLEM_BASE + "idempotency-key-reused"

        # Another caller's same key is theirs: their request reaches the registry.
        theirs = await two.post(
            "/api/v1/registry/models", json={**body, "name": "theirs"}, headers={**key, **other}
        )
        assert theirs.status_code == 201, theirs.text
        assert theirs.json()["id"] != model

        r = await one.get("/api/v1/registry/models", params={"project_id": project})
        names = sorted(m["name"] for m in r.json()["items"])
        assert names == ["churn", "theirs"], r.json()

        # Past its time the key is new: the same request reaches the registry, which now
        # finds the name taken.
        await asyncio.sleep(KEY_SECONDS + 1)
        later = await two.post("/api/v1/registry/models", json=body, headers=key)
        assert later.status_code == 409, later.text
        assert "idempotent-replayed" not in later.headers
    finally:
        await one.aclose()
        await two.aclose()

    await asyncio.sleep(2)  # the relay's time to publish anything a second write made
    published = [e for e in await stream_events(bus, "REGISTRY") if e.subject == model]
    assert len(published) == 1, [e.type for e in published]
