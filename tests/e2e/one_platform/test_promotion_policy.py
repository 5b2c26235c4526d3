"""The promotion policy through the gateway on the running platform: per-project roles decide
who sets it and who approves; each rule on and off; the pending state and distinct approvers;
the author refused; the metric gate; a model's override beating its project's policy; the
events on the bus."""

import uuid

import httpx
import pytest

from tests.bus import wait_for_events

pytestmark = pytest.mark.e2e

REGISTRY = "/api/v1/registry"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def project(admin) -> str:
    r = await admin.post("/api/v1/projects", json={"name": f"policy-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture(scope="module")
async def people(admin, project) -> dict[str, dict[str, str]]:
    """Tokens of members of the project, none with a platform role: `owner` is its admin,
    `eve` an editor, `ann`, `bob` and `cat` approvers."""
    run = uuid.uuid4().hex[:6]
    roles = {
        "owner": "admin",
        "eve": "editor",
        "ann": "approver",
        "bob": "approver",
        "cat": "approver",
    }
    tokens = {}
    for name, role in roles.items():
        subject = f"{name}-{run}"
        r = await admin.put(f"/api/v1/projects/{project}/members/{subject}", json={"role": role})
        assert r.status_code == 201, r.text
        r = await admin.post("/api/v1/tokens", json={"subject": subject, "role": None})
        assert r.status_code == 201, r.text
        tokens[name] = {"Authorization": f"Bearer {r.json()['token']}"}
    return tokens


def refused(r: httpx.Response, status: int, kind: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    assert r.json()["type"].endswith(f"/{kind}"), r.json()
    return r.json()


async def new_model(admin, project, who) -> dict:
    r = await admin.post(
        f"{REGISTRY}/models",
        headers=who,
        json={"name": f"m-{uuid.uuid4().hex[:8]}", "project_id": project},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def new_version(admin, model, who, auc: float = 0.95) -> dict:
    r = await admin.post(
        f"{REGISTRY}/models/{model['id']}/versions", headers=who, json={"metrics": {"auc": auc}}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def move(admin, version, stage, who) -> httpx.Response:
    return await admin.post(
        f"{REGISTRY}/models/versions/{version['id']}/transition", headers=who, json={"stage": stage}
    )


async def test_the_policy_is_documented_in_the_public_openapi(admin):
    spec = (await admin.get("/api/v1/openapi.json")).json()
    for path in (
        "/projects/{project_id}/promotion-policy",
        "/models/{model_id}/promotion-policy",
        "/promotion-requests",
        "/promotion-requests/{request_id}/approve",
    ):
        assert f"{REGISTRY}{path}" in spec["paths"], path
    transition = spec["paths"][f"{REGISTRY}/models/versions/{{version_id}}/transition"]["post"]
    assert "202" in transition["responses"]
    assert "`staging-required`" in transition["responses"]["409"]["description"]


async def test_every_rule_is_off_until_the_project_turns_it_on(admin, project, people):
    model = await new_model(admin, project, people["eve"])
    policy = (
        await admin.get(f"{REGISTRY}/projects/{project}/promotion-policy", headers=people["eve"])
    ).json()
    assert (policy["source"], policy["approvals_required"]) == ("none", 0)
    v = await new_version(admin, model, people["ann"], auc=0.1)
    refused(await move(admin, v, "production", people["eve"]), 403, "forbidden")
    # The author, from stage none, with a low metric: nothing stops an approver.
    r = await move(admin, v, "production", people["ann"])
    assert r.status_code == 200, r.text
    assert r.json()["version"]["approved_by"].startswith("ann-")


async def test_only_a_project_admin_sets_the_policy(admin, project, people):
    for who in ("eve", "ann"):
        r = await admin.put(
            f"{REGISTRY}/projects/{project}/promotion-policy",
            json={"require_staging": True},
            headers=people[who],
        )
        assert refused(r, 403, "forbidden")["required_role"] == "admin"
    r = await admin.put(
        f"{REGISTRY}/projects/{project}/promotion-policy",
        json={"metric_gate": "auc >="},
        headers=people["owner"],
    )
    refused(r, 422, "invalid-metric-gate")
    nowhere = f"{REGISTRY}/projects/{uuid.uuid4()}/promotion-policy"
    refused(await admin.put(nowhere, json={"require_staging": True}), 422, "unknown-project")
    refused(await admin.get(nowhere), 422, "unknown-project")


async def test_each_rule_through_the_gateway_and_the_override(admin, bus, project, people):
    owner, eve, ann, bob, cat = (people[n] for n in ("owner", "eve", "ann", "bob", "cat"))
    r = await admin.put(
        f"{REGISTRY}/projects/{project}/promotion-policy",
        headers=owner,
        json={
            "require_staging": True,
            "approvals_required": 2,
            "forbid_author_approval": True,
            "metric_gate": "auc >= 0.9",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["updated_by"].startswith("owner-")
    model = await new_model(admin, project, eve)

    # Staging first.
    v = await new_version(admin, model, ann)
    refused(await move(admin, v, "production", bob), 409, "staging-required")
    assert (await move(admin, v, "staging", eve)).status_code == 200
    # The metric gate.
    low = await new_version(admin, model, ann, auc=0.8)
    assert (await move(admin, low, "staging", eve)).status_code == 200
    failed = refused(await move(admin, low, "production", bob), 409, "metric-gate-not-met")
    assert failed["failed"] == ["auc >= 0.9 (auc is 0.8)"]

    # Two approvals: an editor's request waits; the author may not approve; distinct approvers.
    r = await move(admin, v, "production", eve)
    assert r.status_code == 202, r.text
    request = r.json()
    listed = (
        await admin.get(
            f"{REGISTRY}/promotion-requests", params={"project_id": project}, headers=eve
        )
    ).json()
    assert [x["id"] for x in listed["items"]] == [request["id"]]
    approve = f"{REGISTRY}/promotion-requests/{request['id']}/approve"
    refused(await admin.post(approve, json={}, headers=eve), 403, "forbidden")
    refused(await admin.post(approve, json={}, headers=ann), 403, "author-may-not-approve")
    first = await admin.post(approve, json={"comment": "ok"}, headers=bob)
    assert first.status_code == 200 and first.json()["version"] is None, first.text
    refused(await admin.post(approve, json={}, headers=bob), 409, "already-approved")
    stage = (await admin.get(f"{REGISTRY}/models/{model['id']}/versions/{v['version']}")).json()
    assert stage["stage"] == "staging"
    done = await admin.post(approve, json={}, headers=cat)
    assert done.status_code == 200, done.text
    assert done.json()["version"]["stage"] == "production"
    assert done.json()["version"]["approved_by"].startswith("cat-")
    assert done.json()["request"]["status"] == "approved"

    events = await wait_for_events(bus, "REGISTRY", v["id"], count=6)
    assert [e.type.split(".")[-2] for e in events] == [
        "created",
        "transitioned",
        "approval_requested",
        "approved",
        "approved",
        "transitioned",
    ]
    assert [e.data["approvals"] for e in events[3:5]] == [1, 2]
    assert events[5].actor.startswith("cat-") and events[5].data["to_stage"] == "production"

    # A model's override beats the project's policy, for that model only; cleared, it is gone.
    other = await new_model(admin, project, eve)
    r = await admin.put(f"{REGISTRY}/models/{other['id']}/promotion-policy", json={}, headers=eve)
    assert r.status_code == 403
    r = await admin.put(f"{REGISTRY}/models/{other['id']}/promotion-policy", json={}, headers=owner)
    assert (r.status_code, r.json()["source"]) == (200, "model"), r.text
    free = await new_version(admin, other, ann, auc=0.1)
    assert (await move(admin, free, "production", ann)).status_code == 200
    assert (
        await admin.delete(f"{REGISTRY}/models/{other['id']}/promotion-policy", headers=owner)
    ).status_code == 204
    held = await new_version(admin, other, ann)
    refused(await move(admin, held, "production", bob), 409, "staging-required")

    # Off again for the project: an approver moves a version straight to production.
    assert (
        await admin.delete(f"{REGISTRY}/projects/{project}/promotion-policy", headers=owner)
    ).status_code == 204
    assert (await move(admin, held, "production", ann)).status_code == 200
