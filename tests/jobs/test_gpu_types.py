"""GPU type options through the jobs service's API, on a real Postgres and NATS."""

import uuid

from tests.bus import wait_for_events


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_create_stores_the_canonical_id_and_publishes(jobs_client, nc, jobs_app):
    gpu_id = unique("A100")
    r = await jobs_client.post(
        "/gpu-types",
        json={
            "id": gpu_id,
            "label": "NVIDIA A100",
            "env": "prod",
            "priority": 1,
            "node_label": "NVIDIA-A100-SXM4-80GB",
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == gpu_id.lower() and body["enabled"] is True
    events = await wait_for_events(nc, "JOBS", f"prod/{gpu_id.lower()}", count=1, timeout=15)
    assert events[0].type == "io.modelplane.jobs.gpu_type_options.changed.v1"
    assert events[0].data["change"] == "created"


async def test_duplicate_id_in_an_env_is_a_conflict_whatever_its_case(jobs_client):
    gpu_id = unique("h100")
    first = await jobs_client.post("/gpu-types", json={"id": gpu_id, "label": "H100", "env": "dev"})
    assert first.status_code == 201
    again = await jobs_client.post(
        "/gpu-types", json={"id": gpu_id.upper(), "label": "H100", "env": "dev"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json()["type"].endswith("/duplicate-gpu-type")
    other_env = await jobs_client.post(
        "/gpu-types", json={"id": gpu_id, "label": "H100", "env": "stg"}
    )
    assert other_env.status_code == 201


async def test_invalid_options_are_rejected(jobs_client):
    r = await jobs_client.post("/gpu-types", json={"id": "a100_80", "label": " ", "env": "dev"})
    assert r.status_code == 422
    assert [v["rule"] for v in r.json()["violations"]] == [
        "gpu-type-id-kebab-case",
        "gpu-type-label-required",
    ]
    r = await jobs_client.post("/gpu-types", json={"id": "a100", "label": "A100", "env": "qa"})
    assert r.status_code == 422


async def test_list_is_enabled_options_by_priority_then_label(jobs_client):
    tag = uuid.uuid4().hex[:6]
    for gpu_id, label, priority, enabled in [
        (f"z-{tag}", "Beta", 2, True),
        (f"y-{tag}", "Alpha", 2, True),
        (f"x-{tag}", "Zeta", 1, True),
        (f"w-{tag}", "Aaa", 0, False),
    ]:
        r = await jobs_client.post(
            "/gpu-types",
            json={
                "id": gpu_id,
                "label": label,
                "env": "stg",
                "priority": priority,
                "enabled": enabled,
            },
        )
        assert r.status_code == 201, r.text
    r = await jobs_client.get("/gpu-types", params={"env": "stg"})
    mine = [o["id"] for o in r.json()["items"] if o["id"].endswith(tag)]
    assert mine == [f"x-{tag}", f"y-{tag}", f"z-{tag}"]
    r = await jobs_client.get("/gpu-types", params={"env": "stg", "include_disabled": "true"})
    mine = [o["id"] for o in r.json()["items"] if o["id"].endswith(tag)]
    assert mine == [f"w-{tag}", f"x-{tag}", f"y-{tag}", f"z-{tag}"]
    assert r.json()["total"] == len(r.json()["items"])


async def test_update_and_delete_match_ids_case_insensitively(jobs_client):
    gpu_id = unique("l4")
    created = (
        await jobs_client.post("/gpu-types", json={"id": gpu_id, "label": "L4", "env": "dev"})
    ).json()
    r = await jobs_client.patch(
        f"/gpu-types/dev/{gpu_id.upper()}", json={"enabled": False, "label": "NVIDIA L4"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False and r.json()["label"] == "NVIDIA L4"
    assert r.json()["updated_at"] > created["updated_at"]
    r = await jobs_client.delete(f"/gpu-types/dev/{gpu_id.upper()}")
    assert r.status_code == 204
    r = await jobs_client.delete(f"/gpu-types/dev/{gpu_id}")
    assert r.status_code == 404
    assert r.json()["type"].endswith("/gpu-type-not-found")
    assert (
        await jobs_client.patch("/gpu-types/dev/nope", json={"enabled": True})
    ).status_code == 404
