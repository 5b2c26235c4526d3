"""The model-registry design's use cases, end to end through the gateway, with the events they
put on the bus."""

import uuid

import httpx

from tests.bus import wait_for_events

pytestmark = __import__("pytest").mark.e2e


async def token_for(admin: httpx.AsyncClient, subject: str, role: str) -> dict[str, str]:
    r = await admin.post("/api/v1/tokens", json={"subject": subject, "role": role})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def new_project(admin: httpx.AsyncClient) -> str:
    r = await admin.post("/api/v1/projects", json={"name": f"proj-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def test_health_readiness_and_authentication(platform, admin):
    async with httpx.AsyncClient(base_url=platform.gateway_url) as anonymous:
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200
        r = await anonymous.get("/api/v1/registry/models")
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        r = await anonymous.get("/api/v1/registry/models", headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401
        spec = (await anonymous.get("/api/v1/openapi.json")).json()
    assert "/api/v1/registry/models/versions/{version_id}/transition" in spec["paths"]
    assert "/api/v1/projects" in spec["paths"]


async def test_models_need_an_existing_project(admin):
    r = await admin.post("/api/v1/registry/models",
                         json={"name": "orphan", "project_id": str(uuid.uuid4())})
    assert r.status_code == 422
    assert r.json()["type"].endswith("/unknown-project")


async def test_use_case_1_versioning(admin, bus):
    engineer = await token_for(admin, "erin", "editor")
    project = await new_project(admin)
    r = await admin.post("/api/v1/registry/models", headers=engineer,
                         json={"name": "churn", "project_id": project, "tags": {"team": "growth"}})
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["created_by"] == "erin"
    r = await admin.post("/api/v1/registry/models", headers=engineer,
                         json={"name": "churn", "project_id": project})
    assert r.status_code == 409

    versions = []
    for i in range(3):
        r = await admin.post(f"/api/v1/registry/models/{model['id']}/versions", headers=engineer,
                             json={"run_id": f"run-{i}", "metrics": {"auc": 0.8 + i / 100},
                                   "artifact_uri": f"s3://models/churn/{i}"})
        assert r.status_code == 201, r.text
        versions.append(r.json())
    assert [v["version"] for v in versions] == ["1", "2", "3"]
    assert all(v["stage"] == "none" and v["created_by"] == "erin" for v in versions)

    detail = (await admin.get(f"/api/v1/registry/models/{model['id']}")).json()
    assert [v["version"] for v in detail["versions"]] == ["3", "2", "1"]
    found = (await admin.get("/api/v1/registry/models",
                             params={"project_id": project, "tag": "team:growth"})).json()
    assert [m["id"] for m in found["items"]] == [model["id"]] and found["total"] == 1

    registered = await wait_for_events(bus, "REGISTRY", model["id"], count=1)
    assert [(e.type, e.actor) for e in registered] == [
        ("io.modelplane.registry.model.registered.v1", "erin")
    ]
    for v in versions:
        (created,) = await wait_for_events(bus, "REGISTRY", v["id"], count=1)
        assert created.data["run_id"] == v["run_id"]


async def test_use_case_2_staging_production_archive(admin, bus):
    engineer = await token_for(admin, "erin", "editor")
    approver = await token_for(admin, "pat", "approver")
    project = await new_project(admin)
    model = (await admin.post("/api/v1/registry/models", headers=engineer,
                              json={"name": "fraud", "project_id": project})).json()
    v1, v2 = [
        (await admin.post(f"/api/v1/registry/models/{model['id']}/versions", headers=engineer,
                          json={})).json()
        for _ in range(2)
    ]

    async def transition(version, stage, who, comment=None):
        return await admin.post(f"/api/v1/registry/models/versions/{version['id']}/transition",
                                headers=who, json={"stage": stage, "comment": comment})

    assert (await transition(v1, "staging", engineer, "candidate")).status_code == 200
    denied = await transition(v1, "production", engineer)
    assert denied.status_code == 403  # only approvers promote to production
    promoted = await transition(v1, "production", approver, "looks good")
    assert promoted.status_code == 200
    assert promoted.json()["version"]["approved_by"] == "pat"
    assert (await transition(v1, "production", approver)).status_code == 409

    replaced = await transition(v2, "production", approver, "v2 wins")
    assert replaced.status_code == 200
    latest = await admin.get("/api/v1/registry/models/stages/production/latest",
                             params={"model_id": model["id"]})
    assert latest.json()["id"] == v2["id"]
    v1_now = (await admin.get(f"/api/v1/registry/models/{model['id']}/versions/1")).json()
    assert v1_now["stage"] == "archived"

    v1_events = await wait_for_events(bus, "REGISTRY", v1["id"], count=4)
    assert [(e.data.get("from_stage"), e.data.get("to_stage"), e.actor) for e in v1_events[1:]] == [
        ("none", "staging", "erin"),
        ("staging", "production", "pat"),
        ("production", "archived", "pat"),
    ]
    v2_events = await wait_for_events(bus, "REGISTRY", v2["id"], count=2)
    assert v2_events[-1].data["to_stage"] == "production"


async def test_use_case_3_audit_trail(admin):
    project = await new_project(admin)
    model = (await admin.post("/api/v1/registry/models",
                              json={"name": "ranker", "project_id": project})).json()
    v = (await admin.post(f"/api/v1/registry/models/{model['id']}/versions", json={})).json()
    for stage, comment in [("staging", "qa"), ("production", "ship"), ("archived", "retire")]:
        r = await admin.post(f"/api/v1/registry/models/versions/{v['id']}/transition",
                             json={"stage": stage, "comment": comment})
        assert r.status_code == 200, r.text
    trail = (await admin.get(f"/api/v1/registry/models/versions/{v['id']}/transitions")).json()
    assert trail["total"] == 3
    assert [(t["from_stage"], t["to_stage"], t["comment"], t["transitioned_by"])
            for t in trail["items"]] == [
        ("production", "archived", "retire", "admin"),
        ("staging", "production", "ship", "admin"),
        ("none", "staging", "qa", "admin"),
    ]
    times = [t["transitioned_at"] for t in trail["items"]]
    assert times == sorted(times, reverse=True)

    assert (await admin.delete(f"/api/v1/registry/models/{model['id']}")).status_code == 204
    gone = await admin.get(f"/api/v1/registry/models/versions/{v['id']}/transitions")
    assert gone.status_code == 404
