"""IntegrationConfig: admins choose each env's backend per concern; every change is published.

Only prod is configured here: the jobs tests of this session rely on dev and stg having no
IntegrationConfig (the jobs service consumes what these tests publish).
"""

from datetime import datetime

import httpx
import nats

from tests.bus import wait_for_events
from tests.gateway.conftest import ADMIN

PROD_TRAINING = "/api/v1/integrations/prod/training_execution"


async def test_an_admin_sets_prods_executor_and_each_change_is_published(
    client: httpx.AsyncClient, nats_url: str
) -> None:
    created = await client.put(
        PROD_TRAINING,
        headers=ADMIN,
        json={"backend": "kubernetes", "settings": {"namespace": "ml"}},
    )
    assert created.status_code == 201, created.text
    assert created.headers["location"] == PROD_TRAINING
    replaced = await client.put(PROD_TRAINING, headers=ADMIN, json={"backend": "local"})
    assert replaced.status_code == 200, replaced.text
    config = replaced.json()
    assert (config["env"], config["concern"], config["backend"], config["settings"]) == (
        "prod",
        "training_execution",
        "local",
        {},
    )
    assert config["updated_by"] == "admin" and config["updated_at"] > created.json()["updated_at"]
    assert (await client.get(PROD_TRAINING, headers=ADMIN)).json() == config
    listed = await client.get("/api/v1/integrations", params={"env": "prod"}, headers=ADMIN)
    assert listed.json() == {"items": [config], "total": 1}

    nc = await nats.connect(nats_url)
    try:
        events = await wait_for_events(nc, "GATEWAY", "prod/training_execution", 2)
    finally:
        await nc.close()
    changed = "io.modelplane.gateway.integration_config.changed.v1"
    assert [e.type for e in events[-2:]] == [changed, changed]
    assert [(e.data["backend"], e.data["settings"]) for e in events[-2:]] == [
        ("kubernetes", {"namespace": "ml"}),
        ("local", {}),
    ]
    latest = events[-1]
    assert latest.actor == "admin" and latest.data["changed_by"] == "admin"
    changed_at = datetime.fromisoformat(latest.data["changed_at"])
    assert changed_at == datetime.fromisoformat(config["updated_at"])


async def test_an_env_without_a_config_is_404(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/v1/integrations/stg/training_execution", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/integration-config-not-found")


async def test_only_admins_read_or_change_integration_configs(
    client: httpx.AsyncClient, token_for
) -> None:
    assert (await client.get("/api/v1/integrations")).status_code == 401
    for role in ("viewer", "editor", "approver"):
        headers = await token_for(role)
        put = await client.put(PROD_TRAINING, headers=headers, json={"backend": "kubernetes"})
        assert put.status_code == 403, role
        assert put.json()["required_role"] == "admin"
        assert (await client.get(PROD_TRAINING, headers=headers)).status_code == 403, role
        assert (await client.get("/api/v1/integrations", headers=headers)).status_code == 403
    admin = await token_for("admin")
    assert (await client.get("/api/v1/integrations", headers=admin)).status_code == 200


async def test_unknown_backends_concerns_and_envs_are_422_and_change_nothing(
    client: httpx.AsyncClient,
) -> None:
    before = (await client.get("/api/v1/integrations", headers=ADMIN)).json()
    unknown = await client.put(PROD_TRAINING, headers=ADMIN, json={"backend": "slurm"})
    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["type"].endswith("/unknown-integration-backend")
    assert unknown.json()["allowed"] == ["local", "kubernetes"]
    for path in ("/api/v1/integrations/qa/training_execution", "/api/v1/integrations/prod/gpus"):
        reply = await client.put(path, headers=ADMIN, json={"backend": "local"})
        assert reply.status_code == 422, path
        assert reply.json()["type"].endswith("/invalid-input")
    not_an_object = await client.put(
        PROD_TRAINING, headers=ADMIN, json={"backend": "local", "settings": ["ml"]}
    )
    assert not_an_object.status_code == 422
    assert (await client.get("/api/v1/integrations", headers=ADMIN)).json() == before
