"""The model-registry design's use cases, end to end through the gateway, with the events they
put on the bus."""

import uuid

import httpx

from tests.bus import wait_for_events
from tests.e2e.clients import new_project, token_for

pytestmark = __import__("pytest").mark.e2e


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
    r = await admin.post(
        "/api/v1/registry/models", json={"name": "orphan", "project_id": str(uuid.uuid4())}
    )
    assert r.status_code == 422
    assert r.json()["type"].endswith("/unknown-project")


async def test_use_case_1_versioning(admin, bus):
    engineer = await token_for(admin, "erin", "editor")
    project = await new_project(admin)
    r = await admin.post(
        "/api/v1/registry/models",
        headers=engineer,
        json={"name": "churn", "project_id": project, "tags": {"team": "growth"}},
    )
    assert r.status_code == 201, r.text
    model = r.json()
    assert model["created_by"] == "erin"
    r = await admin.post(
        "/api/v1/registry/models", headers=engineer, json={"name": "churn", "project_id": project}
    )
    assert r.status_code == 409

    versions = []
    for i in range(3):
        r = await admin.post(
            f"/api/v1/registry/models/{model['id']}/versions",
            headers=engineer,
            json={
                "run_id": f"run-{i}",
                "metrics": {"auc": 0.8 + i / 100},
                "artifact_uri": f"s3://models/churn/{i}",
            },
        )
        assert r.status_code == 201, r.text
        versions.append(r.json())
    assert [v["version"] for v in versions] == ["1", "2", "3"]
    assert all(v["stage"] == "none" and v["created_by"] == "erin" for v in versions)

    detail = (await admin.get(f"/api/v1/registry/models/{model['id']}")).json()
    assert [v["version"] for v in detail["versions"]] == ["3", "2", "1"]
    found = (
        await admin.get(
            "/api/v1/registry/models", params={"project_id": project, "tag": "team:growth"}
        )
    ).json()
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
    model = (
        await admin.post(
            "/api/v1/registry/models",
            headers=engineer,
            json={"name": "fraud", "project_id": project},
        )
    ).json()
    v1, v2 = [
        (
            await admin.post(
                f"/api/v1/registry/models/{model['id']}/versions", headers=engineer, json={}
            )
        ).json()
        for _ in range(2)
    ]

    async def transition(version, stage, who, comment=None):
        return await admin.post(
            f"/api/v1/registry/models/versions/{version['id']}/transition",
            headers=who,
            json={"stage": stage, "comment": comment},
        )

    assert (await transition(v1, "staging", engineer, "candidate")).status_code == 200
    denied = await transition(v1, "production", engineer)
    assert denied.status_code == 403  # only approvers promote to production
    promoted = await transition(v1, "production", approver, "looks good")
    assert promoted.status_code == 200
    assert promoted.json()["version"]["approved_by"] == "pat"
    assert (await transition(v1, "production", approver)).status_code == 409

    replaced = await transition(v2, "production", approver, "v2 wins")
    assert replaced.status_code == 200
    latest = await admin.get(
        "/api/v1/registry/models/stages/production/latest", params={"model_id": model["id"]}
    )
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
    model = (
        await admin.post("/api/v1/registry/models", json={"name": "ranker", "project_id": project})
    ).json()
    v = (await admin.post(f"/api/v1/registry/models/{model['id']}/versions", json={})).json()
    for stage, comment in [("staging", "qa"), ("production", "ship"), ("archived", "retire")]:
        r = await admin.post(
            f"/api/v1/registry/models/versions/{v['id']}/transition",
            json={"stage": stage, "comment": comment},
        )
        assert r.status_code == 200, r.text
    trail = (await admin.get(f"/api/v1/registry/models/versions/{v['id']}/transitions")).json()
    assert trail["total"] == 3
    assert [
        (t["from_stage"], t["to_stage"], t["comment"], t["transitioned_by"]) for t in trail["items"]
    ] == [
        ("production", "archived", "retire", "admin"),
        ("staging", "production", "ship", "admin"),
        ("none", "staging", "qa", "admin"),
    ]
    times = [t["transitioned_at"] for t in trail["items"]]
    assert times == sorted(times, reverse=True)

    assert (await admin.delete(f"/api/v1/registry/models/{model['id']}")).status_code == 204
    gone = await admin.get(f"/api/v1/registry/models/versions/{v['id']}/transitions")
    assert gone.status_code == 404


async def test_use_cases_with_the_seeds_list_tags(admin, bus):
    """The registry design's tags are a list of labels; MLflow's an object: both, side by side."""
    engineer = await token_for(admin, "erin", "editor")
    project = await new_project(admin)
    models = "/api/v1/registry/models"
    r = await admin.post(
        models,
        headers=engineer,
        json={"name": "credit-risk", "project_id": project, "tags": ["risk", "credit"]},
    )
    assert r.status_code == 201, r.text
    listed = r.json()
    assert listed["tags"] == ["risk", "credit"]
    keyed = (
        await admin.post(
            models,
            headers=engineer,
            json={"name": "fraud", "project_id": project, "tags": {"risk": "high"}},
        )
    ).json()
    plain = (
        await admin.post(models, headers=engineer, json={"name": "plain", "project_id": project})
    ).json()
    assert (keyed["tags"], plain["tags"]) == ({"risk": "high"}, [])

    async def found(*tags: str) -> list[str]:
        r = await admin.get(models, params={"project_id": project, "tag": list(tags)})
        assert r.status_code == 200, r.text
        return sorted(m["name"] for m in r.json()["items"])

    assert await found("risk") == ["credit-risk", "fraud"]
    assert await found("risk", "credit") == ["credit-risk"]
    assert await found("risk:high") == ["fraud"]

    r = await admin.post(
        f"{models}/{listed['id']}/versions",
        headers=engineer,
        json={"run_id": "run-1", "tags": ["candidate"]},
    )
    assert r.status_code == 201, r.text
    version = r.json()
    assert version["tags"] == ["candidate"]
    r = await admin.patch(
        f"{models}/versions/{version['id']}",
        headers=engineer,
        json={"tags": ["candidate", "reviewed"]},
    )
    assert r.status_code == 200 and r.json()["tags"] == ["candidate", "reviewed"]
    r = await admin.patch(
        f"{models}/{listed['id']}", headers=engineer, json={"tags": ["risk", "credit", "emea"]}
    )
    assert r.status_code == 200 and r.json()["tags"] == ["risk", "credit", "emea"]
    detail = (await admin.get(f"{models}/{listed['id']}")).json()
    assert detail["tags"] == ["risk", "credit", "emea"]
    assert detail["versions"][0]["tags"] == ["candidate", "reviewed"]

    registered, updated = await wait_for_events(bus, "REGISTRY", listed["id"], count=2)
    assert registered.type == "io.modelplane.registry.model.registered.v1"
    assert (registered.data["tags"], registered.data["tag_list"]) == ({}, ["risk", "credit"])
    assert updated.data["changes"] == {"tags": ["risk", "credit", "emea"]}
    created, _ = await wait_for_events(bus, "REGISTRY", version["id"], count=2)
    assert created.type == "io.modelplane.registry.model_version.created.v1"
    assert (created.data["tags"], created.data["tag_list"]) == ({}, ["candidate"])


async def test_a_null_or_unstorable_value_is_refused_and_lists_keep_working(admin):
    project = await new_project(admin)
    models = "/api/v1/registry/models"
    model = (await admin.post(models, json={"name": "n", "project_id": project})).json()
    version = (await admin.post(f"{models}/{model['id']}/versions", json={})).json()
    refused = [
        (f"{models}/{model['id']}", {"tags": None}, "tags"),
        (f"{models}/{model['id']}", {"name": None}, "name"),
        (f"{models}/versions/{version['id']}", {"tags": None}, "tags"),
        (f"{models}/versions/{version['id']}", {"metadata": None}, "metadata"),
        (f"{models}/versions/{version['id']}", {"description": "a\u0000b"}, "description"),
    ]
    for path, body, field in refused:
        r = await admin.patch(path, json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert field in r.json()["detail"]
    r = await admin.post(
        f"{models}/{model['id']}/versions",
        content=b'{"metrics": {"auc": NaN}}',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and "metrics.auc" in r.json()["detail"], r.text
    for params in ({"offset": 2**63}, {"name": "a\u0000"}, {"tag": "a\u0000"}):
        r = await admin.get(models, params=params)
        assert r.status_code == 422, (params, r.text)
    for listing in (models, f"{models}/summary", f"{models}/{model['id']}"):
        assert (await admin.get(listing)).status_code == 200
