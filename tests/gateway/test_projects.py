"""Projects: created by platform admins only, readable by viewers, names unique, creation
published."""

import uuid

import httpx
import nats
import pytest

from tests.bus import wait_for_events
from tests.gateway.conftest import ADMIN


async def test_an_admin_creates_a_project_and_a_viewer_reads_it(
    client: httpx.AsyncClient, token_for, nats_url: str
) -> None:
    admin, viewer = await token_for("admin"), await token_for("viewer")
    name = f"fraud-{uuid.uuid4().hex[:8]}"
    created = await client.post(
        "/api/v1/projects", json={"name": name, "description": "fraud models"}, headers=admin
    )
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["name"] == name and project["description"] == "fraud models"
    assert project["created_by"].startswith("admin-")

    fetched = await client.get(f"/api/v1/projects/{project['id']}", headers=viewer)
    assert fetched.status_code == 200 and fetched.json() == project

    page = (await client.get("/api/v1/projects", params={"limit": 500}, headers=viewer)).json()
    assert project in page["items"] and page["total"] >= 1

    nc = await nats.connect(nats_url)
    try:
        events = await wait_for_events(nc, "GATEWAY", project["id"], 1)
    finally:
        await nc.close()
    assert [e.type for e in events] == ["io.modelplane.gateway.project.created.v1"]
    assert events[0].data["name"] == name
    assert events[0].actor == project["created_by"]


async def test_projects_page_with_limit_and_offset(
    client: httpx.AsyncClient, project: dict
) -> None:
    total = (await client.get("/api/v1/projects", headers=ADMIN)).json()["total"]
    params = {"limit": 1, "offset": total - 1}
    page = (await client.get("/api/v1/projects", params=params, headers=ADMIN)).json()
    assert page["total"] == total and page["limit"] == 1 and page["offset"] == total - 1
    assert len(page["items"]) == 1
    too_small = await client.get("/api/v1/projects", params={"limit": 0}, headers=ADMIN)
    assert too_small.status_code == 422


@pytest.mark.parametrize("role", ["viewer", "editor", "approver"])
async def test_only_platform_admins_create_projects(
    client: httpx.AsyncClient, token_for, role: str
) -> None:
    reply = await client.post(
        "/api/v1/projects", json={"name": f"nope-{role}"}, headers=await token_for(role)
    )
    assert reply.status_code == 403
    assert reply.json()["required_role"] == "admin"
    page = (await client.get("/api/v1/projects", params={"limit": 500}, headers=ADMIN)).json()
    assert f"nope-{role}" not in [p["name"] for p in page["items"]]


async def test_a_duplicate_project_name_is_409(client: httpx.AsyncClient, project: dict) -> None:
    reply = await client.post("/api/v1/projects", json={"name": project["name"]}, headers=ADMIN)
    assert reply.status_code == 409
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["type"] == "https://modelplane.dev/problems/duplicate-project-name"


async def test_an_unknown_project_is_404_and_a_malformed_id_422(client: httpx.AsyncClient) -> None:
    missing = await client.get(f"/api/v1/projects/{uuid.uuid4()}", headers=ADMIN)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    malformed = await client.get("/api/v1/projects/not-a-uuid", headers=ADMIN)
    assert malformed.status_code == 422
    assert malformed.json()["type"] == "https://modelplane.dev/problems/invalid-input"


async def test_an_empty_project_name_is_422(client: httpx.AsyncClient) -> None:
    reply = await client.post("/api/v1/projects", json={"name": ""}, headers=ADMIN)
    assert reply.status_code == 422


async def test_a_nul_character_anywhere_in_the_gateways_own_writes_is_422(
    client: httpx.AsyncClient, project: dict
) -> None:
    """Postgres takes no NUL in text or JSON: each was a 500 before it was refused up front."""
    members = f"/api/v1/projects/{project['id']}/members"
    writes = [
        ("POST", "/api/v1/projects", {"name": "a\x00b"}),
        (
            "POST",
            "/api/v1/projects",
            {"name": f"nul-{uuid.uuid4().hex[:6]}", "description": "\x00"},
        ),
        ("POST", "/api/v1/tokens", {"subject": "eve\x00", "role": "viewer"}),
        ("PUT", f"{members}/eve%00", {"role": "viewer"}),
        ("DELETE", f"{members}/eve%00", None),
        (
            "PUT",
            "/api/v1/integrations/dev/training_execution",
            {"backend": "local", "settings": {"cwd": "/tmp\x00"}},
        ),
        (
            "PUT",
            "/api/v1/integrations/dev/training_execution",
            {"backend": "local", "settings": {"nested": [{"k\x00": 1}]}},
        ),
    ]
    for method, url, body in writes:
        reply = await client.request(method, url, json=body, headers=ADMIN)
        assert reply.status_code == 422, (method, url, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json()["type"].endswith("/invalid-input")
    names = [
        p["name"]
        for p in (
            await client.get("/api/v1/projects", params={"limit": 500}, headers=ADMIN)
        ).json()["items"]
    ]
    assert not [n for n in names if "\x00" in n]
