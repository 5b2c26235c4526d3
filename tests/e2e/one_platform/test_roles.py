"""Per-project roles through the gateway, decided by the services that own the data; tokens
limited to projects; lists scoped to what the caller may see; revocation across gateways."""

import asyncio
import codecs
import json
import time
import uuid

import httpx
import pytest

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings

pytestmark = pytest.mark.e2e

REGISTRY = "/api/v1/registry"


async def new_project(admin: httpx.AsyncClient) -> str:
    r = await admin.post("/api/v1/projects", json={"name": f"proj-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def token(
    admin: httpx.AsyncClient, subject: str, role: str | None, projects: list[str] | None = None
) -> dict[str, str]:
    body = {"subject": subject, "role": role, "projects": projects}
    r = await admin.post("/api/v1/tokens", json=body)
    assert r.status_code == 201, r.text
    assert (r.json()["role"], r.json()["projects"]) == (role, projects)
    return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture(scope="module")
async def projects(admin) -> tuple[str, str]:
    return await new_project(admin), await new_project(admin)


@pytest.fixture(scope="module")
async def members(admin, projects) -> dict[str, dict[str, str]]:
    """A subject of each role in project A and in no other project, each with a token that has
    no platform role; `owner` is A's admin and names the others."""
    a, _ = projects
    run = uuid.uuid4().hex[:6]
    subjects = {role: f"{role}-{run}" for role in ("viewer", "editor", "approver", "owner")}
    r = await admin.put(f"/api/v1/projects/{a}/members/{subjects['owner']}", json={"role": "admin"})
    assert r.status_code == 201, r.text
    tokens = {role: await token(admin, subject, None) for role, subject in subjects.items()}
    for role in ("viewer", "editor", "approver"):
        r = await admin.put(
            f"/api/v1/projects/{a}/members/{subjects[role]}",
            json={"role": role},
            headers=tokens["owner"],
        )
        assert r.status_code == 201, r.text
        assert r.json()["updated_by"] == subjects["owner"]
    return tokens


async def test_project_admins_list_and_manage_their_members_only(admin, projects, members):
    a, b = projects
    owner = members["owner"]
    listed = (await admin.get(f"/api/v1/projects/{a}/members", headers=owner)).json()
    assert sorted(m["role"] for m in listed["items"]) == ["admin", "approver", "editor", "viewer"]
    for role in ("viewer", "editor", "approver"):
        r = await admin.get(f"/api/v1/projects/{a}/members", headers=members[role])
        assert r.status_code == 403 and r.json()["required_role"] == "admin"
    # A project admin is nobody in another project: it is as good as absent to them.
    assert (await admin.get(f"/api/v1/projects/{b}/members", headers=owner)).status_code == 404
    r = await admin.put(
        f"/api/v1/projects/{b}/members/intruder", json={"role": "admin"}, headers=owner
    )
    assert r.status_code == 404
    r = await admin.put(
        f"/api/v1/projects/{a}/members/temp", json={"role": "viewer"}, headers=owner
    )
    assert r.status_code == 201
    assert (
        await admin.delete(f"/api/v1/projects/{a}/members/temp", headers=owner)
    ).status_code == 204
    assert (
        await admin.delete(f"/api/v1/projects/{a}/members/temp", headers=owner)
    ).status_code == 404
    r = await admin.put(f"/api/v1/projects/{a}/members/temp", json={"role": "owner"}, headers=owner)
    assert r.status_code == 422


async def test_each_role_does_what_it_may_in_its_project_and_nothing_in_another(
    admin, projects, members
):
    a, b = projects
    viewer, editor, approver = members["viewer"], members["editor"], members["approver"]
    # Registering: an editor in A, not in B; a viewer nowhere.
    r = await admin.post(
        f"{REGISTRY}/models", json={"name": "churn", "project_id": a}, headers=editor
    )
    assert r.status_code == 201, r.text
    model = r.json()
    r = await admin.post(
        f"{REGISTRY}/models", json={"name": "churn", "project_id": b}, headers=editor
    )
    assert r.status_code == 403 and r.json()["required_role"] == "editor"
    r = await admin.post(
        f"{REGISTRY}/models", json={"name": "peek", "project_id": a}, headers=viewer
    )
    assert r.status_code == 403
    b_model = (
        await admin.post(f"{REGISTRY}/models", json={"name": "other", "project_id": b})
    ).json()

    # Reading: a viewer in A reads A's model, not B's.
    assert (await admin.get(f"{REGISTRY}/models/{model['id']}", headers=viewer)).status_code == 200
    r = await admin.get(f"{REGISTRY}/models/{b_model['id']}", headers=viewer)
    assert r.status_code == 403
    r = await admin.patch(
        f"{REGISTRY}/models/{model['id']}", json={"description": "x"}, headers=viewer
    )
    assert r.status_code == 403

    # Stages: an editor moves to staging, only an approver to production.
    version = (
        await admin.post(f"{REGISTRY}/models/{model['id']}/versions", json={}, headers=editor)
    ).json()
    assert version["created_by"].startswith("editor-")
    move = f"{REGISTRY}/models/versions/{version['id']}/transition"
    assert (await admin.post(move, json={"stage": "staging"}, headers=editor)).status_code == 200
    r = await admin.post(move, json={"stage": "production"}, headers=editor)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["required_role"] == "approver"

    # However the body is encoded, the editor cannot promote: it is refused before anyone reads it.
    text = json.dumps({"stage": "production"})
    for body in (
        codecs.BOM_UTF8 + text.encode(),
        text.encode("utf-16"),
        text.encode("utf-16-be"),
        text.encode("utf-32"),
    ):
        r = await admin.post(
            move, content=body, headers={**editor, "Content-Type": "application/json"}
        )
        assert r.status_code == 415, (body, r.text)
    got = (await admin.get(f"{REGISTRY}/models/{model['id']}", headers=viewer)).json()
    assert [v["stage"] for v in got["versions"]] == ["staging"]

    r = await admin.post(move, json={"stage": "production"}, headers=approver)
    assert r.status_code == 200, r.text
    assert r.json()["version"]["approved_by"].startswith("approver-")


async def test_lists_show_only_the_projects_the_caller_may_see(admin, projects, members):
    a, b = projects
    viewer = members["viewer"]
    await admin.post(f"{REGISTRY}/models", json={"name": "in-a", "project_id": a})
    await admin.post(f"{REGISTRY}/models", json={"name": "in-b", "project_id": b})
    seen = (await admin.get(f"{REGISTRY}/models", params={"limit": 1000}, headers=viewer)).json()
    assert seen["items"] and {m["project_id"] for m in seen["items"]} == {a}
    summary = (await admin.get(f"{REGISTRY}/models/summary", headers=viewer)).json()
    assert {m["project_id"] for m in summary["items"]} == {a}
    asked = await admin.get(f"{REGISTRY}/models", params={"project_id": b}, headers=viewer)
    assert asked.status_code == 200 and asked.json()["total"] == 0
    everything = (await admin.get(f"{REGISTRY}/models", params={"limit": 1000})).json()
    assert {a, b} <= {m["project_id"] for m in everything["items"]}

    page = (await admin.get("/api/v1/projects", params={"limit": 500}, headers=viewer)).json()
    assert [p["id"] for p in page["items"]] == [a] and page["total"] == 1
    assert (await admin.get(f"/api/v1/projects/{b}", headers=viewer)).status_code == 404
    assert (await admin.get("/api/v1/jobs", headers=viewer)).json()["total"] == 0


async def test_a_token_limited_to_projects_reaches_only_them(admin, projects):
    a, b = projects
    limited = await token(admin, f"ci-{uuid.uuid4().hex[:6]}", "admin", projects=[a])
    r = await admin.post(
        f"{REGISTRY}/models", json={"name": "ci-a", "project_id": a}, headers=limited
    )
    assert r.status_code == 201, r.text
    r = await admin.post(
        f"{REGISTRY}/models", json={"name": "ci-b", "project_id": b}, headers=limited
    )
    assert r.status_code == 403
    seen = (await admin.get(f"{REGISTRY}/models", params={"limit": 1000}, headers=limited)).json()
    assert {m["project_id"] for m in seen["items"]} == {a}
    page = (await admin.get("/api/v1/projects", headers=limited)).json()
    assert [p["id"] for p in page["items"]] == [a]
    # Platform-wide powers need an admin token without a limit.
    r = await admin.post("/api/v1/projects", json={"name": "nope"}, headers=limited)
    assert r.status_code == 403
    assert (await admin.get("/api/v1/tokens", headers=limited)).status_code == 403
    r = await admin.post(
        "/api/v1/gpu-types", json={"id": "x", "label": "X", "env": "dev"}, headers=limited
    )
    assert r.status_code == 403


async def test_only_platform_admins_create_projects(admin):
    for role in ("viewer", "editor", "approver"):
        r = await admin.post(
            "/api/v1/projects",
            json={"name": f"by-{role}-{uuid.uuid4().hex}"},
            headers=await token(admin, f"{role}-x", role),
        )
        assert r.status_code == 403, role
    assert (
        await admin.post("/api/v1/projects", json={"name": f"ok-{uuid.uuid4().hex}"})
    ).status_code == 201


async def test_jobs_need_an_editor_and_an_existing_project(admin, projects, members):
    a, _ = projects
    body = {"name": "train", "project_id": a, "env": "dev", "command": ["true"]}
    r = await admin.post("/api/v1/jobs", json=body, headers=members["viewer"])
    assert r.status_code == 403 and r.json()["required_role"] == "editor"
    # A platform admin is an editor in every project, but a project must exist.
    r = await admin.post("/api/v1/jobs", json={**body, "project_id": str(uuid.uuid4())})
    assert r.status_code == 422 and r.json()["type"].endswith("/unknown-project")


async def test_a_token_revoked_through_one_gateway_is_refused_by_another_within_a_second(
    platform, admin, nats_url
):
    second = create_app(
        GatewaySettings(
            database_url=platform.database_url,
            nats_url=nats_url,
            registry_url=platform.service_url("registry"),
            jobs_url=platform.service_url("jobs"),
        )
    )
    r = await admin.post("/api/v1/tokens", json={"subject": "leaver", "role": "viewer"})
    leaver, token_id = {"Authorization": f"Bearer {r.json()['token']}"}, r.json()["id"]
    async with (
        second.router.lifespan_context(second),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(second), base_url="http://second", headers=leaver
        ) as other,
    ):
        assert (await other.get(f"{REGISTRY}/models")).status_code == 200  # now remembered
        assert (await admin.delete(f"/api/v1/tokens/{token_id}")).status_code == 204
        revoked = time.monotonic()
        while (await other.get(f"{REGISTRY}/models")).status_code == 200:
            assert time.monotonic() - revoked < 1.0, "the other gateway still takes the token"
            await asyncio.sleep(0.02)
        assert (await other.get(f"{REGISTRY}/models")).status_code == 401
