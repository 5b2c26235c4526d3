"""Two registry and two gateway processes: concurrent promotions through both gateways still
leave one production version per model, and every stored transition is published once.
`Idempotency-Key`: a retry through either gateway gets the first reply, the registry stores and
publishes the write once; another body is 422; another caller's key is theirs; a key past its
time is new again."""

import asyncio
import secrets
import time

import httpx
import pytest

from deploy.launcher import Platform
from shared.errors import PROBLEM_BASE
from shared.local_infra import create_database, drop_database
from tests.bus import stream_events

pytestmark = pytest.mark.e2e

MODELS = 3
VERSIONS = 4
TRANSITIONED = "io.modelplane.registry.model_version.transitioned.v1"
KEY_SECONDS = 6


@pytest.fixture(scope="module")
async def platform(database_server_url, nats_url, tmp_path_factory: pytest.TempPathFactory):
    name = f"modelplane_replicas_{secrets.token_hex(4)}"
    database_url = await create_database(database_server_url, name)
    try:
        async with Platform(
            database_url=database_url,
            nats_url=nats_url,
            replicas={"registry": 2, "gateway": 2},
            state_dir=tmp_path_factory.mktemp("state"),
            log_dir=tmp_path_factory.mktemp("logs"),
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
