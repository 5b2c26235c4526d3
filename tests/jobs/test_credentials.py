"""The jobs service trusts only the gateway's credential and decides itself who may do what:
submitting and cancelling need an editor in the job's project, reading a viewer, GPU types a
platform admin; lists show only the caller's projects; a job's project must exist."""

import uuid

import httpx
import pytest

from shared.auth import Role
from shared.errors import PROBLEM_BASE
from tests.credentials import credential_headers, known_project
from tests.jobs.test_jobs import job_body


def _as(app, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://jobs/api/v1", headers=headers
    )


def _member(role: Role | None, project: str) -> dict[str, str]:
    roles = {} if role is None else {uuid.UUID(project): role}
    return credential_headers(f"{role}-{uuid.uuid4().hex[:4]}", role=None, project_roles=roles)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Modelplane-Actor": "alice@example.com"}, credential_headers(lifetime_seconds=-5)],
    ids=["none", "actor-header", "expired"],
)
async def test_direct_calls_without_a_valid_credential_are_401(jobs_app, headers):
    async with _as(jobs_app, headers) as anyone:
        for method, path in [
            ("GET", "/jobs"),
            ("POST", "/jobs"),
            ("GET", "/gpu-types"),
            ("POST", "/gpu-types"),
        ]:
            reply = await anyone.request(method, path, json={})
            assert reply.status_code == 401, (method, path)
            assert reply.headers["content-type"] == "application/problem+json"


async def test_roles_in_the_jobs_project_decide(jobs_app, jobs_client):
    project, elsewhere = known_project(jobs_app), known_project(jobs_app)
    body = job_body(project_id=project, command=["true"], parameters={})
    for role in (None, Role.VIEWER):
        async with _as(jobs_app, _member(role, project)) as c:
            refused = await c.post("/jobs", json=body)
            assert refused.status_code == 403, refused.text
            assert refused.json()["required_role"] == "editor"
    async with _as(jobs_app, _member(Role.EDITOR, project)) as editor:
        submitted = await editor.post("/jobs", json=body)
        assert submitted.status_code == 201, submitted.text
        job = submitted.json()
        assert job["created_by"].startswith("editor-")
        assert (
            await editor.post("/jobs", json={**body, "project_id": elsewhere})
        ).status_code == 403
    async with _as(jobs_app, _member(Role.VIEWER, project)) as viewer:
        assert (await viewer.get(f"/jobs/{job['id']}")).status_code == 200
        assert (await viewer.post(f"/jobs/{job['id']}/cancel")).status_code == 403
        listed = (await viewer.get("/jobs", params={"limit": 1000})).json()
        assert {j["project_id"] for j in listed["items"]} == {project}
    async with _as(jobs_app, _member(Role.VIEWER, elsewhere)) as stranger:
        assert (await stranger.get(f"/jobs/{job['id']}")).status_code == 403
        assert (await stranger.get(f"/jobs/{job['id']}/logs")).status_code == 403
        assert (await stranger.get("/jobs")).json()["total"] == 0
        assert (await stranger.get("/jobs", params={"project_id": project})).json()["total"] == 0


async def test_gpu_types_are_changed_by_platform_admins_only(jobs_app, jobs_client):
    option = {"id": f"t4-{uuid.uuid4().hex[:4]}", "label": "T4", "env": "dev"}
    project = known_project(jobs_app)
    for headers in (
        credential_headers("ed", role=Role.EDITOR),
        _member(Role.ADMIN, project),
        credential_headers("ci", role=Role.ADMIN, projects={uuid.UUID(project)}),
    ):
        async with _as(jobs_app, headers) as c:
            refused = await c.post("/gpu-types", json=option)
            assert refused.status_code == 403, refused.text
            assert refused.json()["type"] == PROBLEM_BASE + "forbidden"
            assert (await c.get("/gpu-types")).status_code == 200
    assert (await jobs_client.post("/gpu-types", json=option)).status_code == 201


async def test_a_job_in_a_project_that_does_not_exist_is_refused(jobs_app, jobs_client):
    # The gateway these tests run without answers nothing: the service cannot vouch for it.
    body = job_body(project_id=str(uuid.uuid4()), command=["true"], parameters={})
    reply = await jobs_client.post("/jobs", json=body)
    assert reply.status_code in (422, 503), reply.text
    assert (await jobs_client.get("/jobs", params={"project_id": body["project_id"]})).json()[
        "total"
    ] == 0
