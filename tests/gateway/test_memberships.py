"""Memberships and project-limited tokens at the gateway: who manages them, and the roles the
gateway then vouches for in the credential it forwards (the services decide with it)."""

import uuid

import httpx

from shared.auth import Role
from tests.gateway.conftest import ADMIN, FakeRegistry, bearer, forwarded_caller


async def new_token(
    client: httpx.AsyncClient, subject: str, role: str | None, projects: list[str] | None = None
) -> dict[str, str]:
    reply = await client.post(
        "/api/v1/tokens",
        headers=ADMIN,
        json={"subject": subject, "role": role, "projects": projects},
    )
    assert reply.status_code == 201, reply.text
    return bearer(reply.json()["token"])


async def test_a_members_roles_travel_in_the_credential_and_change_at_once(
    client: httpx.AsyncClient, registry: FakeRegistry, project: dict
) -> None:
    subject = f"mia-{uuid.uuid4().hex[:6]}"
    mia = await new_token(client, subject, None)
    await client.get("/api/v1/registry/models", headers=mia)
    assert forwarded_caller(registry.requests[-1]).project_roles == {}

    path = f"/api/v1/projects/{project['id']}/members/{subject}"
    put = await client.put(path, json={"role": "editor"}, headers=ADMIN)
    assert put.status_code == 201, put.text
    assert put.headers["location"] == path
    await client.get("/api/v1/registry/models", headers=mia)
    caller = forwarded_caller(registry.requests[-1])
    assert caller.role is None
    assert caller.project_roles == {uuid.UUID(project["id"]): Role.EDITOR}
    assert caller.visible_projects == {uuid.UUID(project["id"])}

    replaced = await client.put(path, json={"role": "approver"}, headers=ADMIN)
    assert replaced.status_code == 200 and replaced.json()["role"] == "approver"
    members = (await client.get(f"/api/v1/projects/{project['id']}/members", headers=ADMIN)).json()
    assert [(m["subject"], m["role"]) for m in members["items"]] == [(subject, "approver")]

    assert (await client.delete(path, headers=ADMIN)).status_code == 204
    await client.get("/api/v1/registry/models", headers=mia)
    assert forwarded_caller(registry.requests[-1]).project_roles == {}


async def test_members_are_managed_by_the_projects_admins_only(
    client: httpx.AsyncClient, project: dict, token_for
) -> None:
    path = f"/api/v1/projects/{project['id']}/members"
    for role in ("viewer", "editor", "approver"):
        headers = await token_for(role)
        assert (await client.get(path, headers=headers)).status_code == 403
        reply = await client.put(f"{path}/someone", json={"role": "viewer"}, headers=headers)
        assert reply.status_code == 403 and reply.json()["required_role"] == "admin"
    owner = f"owner-{uuid.uuid4().hex[:6]}"
    await client.put(f"{path}/{owner}", json={"role": "admin"}, headers=ADMIN)
    owner_token = await new_token(client, owner, None)
    reply = await client.put(f"{path}/newcomer", json={"role": "viewer"}, headers=owner_token)
    assert reply.status_code == 201 and reply.json()["updated_by"] == owner
    missing = f"/api/v1/projects/{uuid.uuid4()}/members/x"
    assert (await client.put(missing, json={"role": "viewer"}, headers=ADMIN)).status_code == 404
    bad_role = await client.put(f"{path}/x", json={"role": "owner"}, headers=ADMIN)
    assert bad_role.status_code == 422


async def test_a_token_may_be_limited_to_existing_projects(
    client: httpx.AsyncClient, registry: FakeRegistry, project: dict
) -> None:
    limited = await new_token(client, "ci", "editor", [project["id"]])
    await client.get("/api/v1/registry/models", headers=limited)
    caller = forwarded_caller(registry.requests[-1])
    assert caller.projects == {uuid.UUID(project["id"])} and caller.role == Role.EDITOR
    listed = (await client.get("/api/v1/projects", headers=limited)).json()
    assert [p["id"] for p in listed["items"]] == [project["id"]]

    unknown = await client.post(
        "/api/v1/tokens",
        headers=ADMIN,
        json={"subject": "ci", "role": "editor", "projects": [str(uuid.uuid4())]},
    )
    assert unknown.status_code == 422
    assert unknown.json()["type"].endswith("/unknown-project")


async def test_a_subject_with_a_line_break_is_a_member_and_its_location_is_quoted(
    client: httpx.AsyncClient, project: dict
) -> None:
    members = f"/api/v1/projects/{project['id']}/members"
    put = await client.put(f"{members}/%0D.r%C2%B3", json={"role": "viewer"}, headers=ADMIN)
    assert put.status_code == 201, put.text
    assert put.json()["subject"] == "\r.r³"
    assert put.headers["location"] == f"{members}/%0D.r%C2%B3"
    nul = await client.put(f"{members}/a%00b", json={"role": "viewer"}, headers=ADMIN)
    assert nul.status_code == 422 and nul.json()["errors"][0]["loc"] == ["path", "subject"]
