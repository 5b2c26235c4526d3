"""`/api/v1/jobs...` and `/api/v1/gpu-types...` reach the jobs service, with role checks first."""

import asyncio
import uuid

import httpx

from services.gateway.app import create_app
from tests.gateway.conftest import ADMIN_TOKEN, FakeRegistry, bearer, serving


async def test_reads_need_a_viewer_and_are_forwarded(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    viewer = await token_for("viewer")
    reply = await client.get("/api/v1/gpu-types", params={"env": "prod"}, headers=viewer)
    assert reply.status_code == 200, reply.text
    reply = await client.get("/api/v1/jobs/abc/logs", headers=viewer)
    assert reply.status_code == 200
    assert [(r["method"], r["path"], r["query"]) for r in registry.requests] == [
        ("GET", "/api/v1/gpu-types", "env=prod"), ("GET", "/api/v1/jobs/abc/logs", ""),
    ]
    assert registry.requests[0]["headers"]["x-modelplane-actor"].startswith("viewer-")
    assert (await client.get("/api/v1/jobs")).status_code == 401


async def test_gpu_type_changes_need_an_admin(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    option = {"id": "a100", "label": "A100", "env": "prod"}
    for role in ("viewer", "editor", "approver"):
        reply = await client.post("/api/v1/gpu-types", json=option, headers=await token_for(role))
        assert reply.status_code == 403, role
        patch = await client.patch("/api/v1/gpu-types/prod/a100", json={"enabled": False},
                                   headers=await token_for(role))
        assert patch.status_code == 403, role
    assert registry.requests == []
    reply = await client.post("/api/v1/gpu-types", json=option, headers=await token_for("admin"))
    assert reply.status_code == 200
    assert registry.requests[0]["path"] == "/api/v1/gpu-types"


async def test_submitting_a_job_needs_an_editor_and_an_existing_project(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for, project: dict
) -> None:
    body = {"name": "train", "project_id": project["id"], "env": "dev", "command": ["true"]}
    viewer = await client.post("/api/v1/jobs", json=body, headers=await token_for("viewer"))
    assert viewer.status_code == 403
    unknown = await client.post("/api/v1/jobs", json={**body, "project_id": str(uuid.uuid4())},
                                headers=await token_for("editor"))
    assert unknown.status_code == 422
    assert unknown.json()["type"].endswith("/unknown-project")
    assert registry.requests == []
    editor = await client.post("/api/v1/jobs", json=body, headers=await token_for("editor"))
    assert editor.status_code == 200
    cancel = await client.post("/api/v1/jobs/x/cancel", headers=await token_for("editor"))
    assert cancel.status_code == 200
    assert [r["path"] for r in registry.requests] == ["/api/v1/jobs", "/api/v1/jobs/x/cancel"]


async def test_a_followed_log_reaches_the_caller_line_by_line(
    gateway_settings, registry: FakeRegistry
) -> None:
    # A real server: the in-process ASGI transport would hold the reply until it ended.
    app = create_app(gateway_settings(registry_url=registry.url, jobs_url=registry.url))
    async with (
        serving(app, lifespan="on") as url,
        httpx.AsyncClient(base_url=url) as client,
        client.stream("GET", "/api/v1/jobs/following/logs", headers=bearer(ADMIN_TOKEN)) as reply,
    ):
        lines = reply.aiter_lines()
        async with asyncio.timeout(10):
            assert await anext(lines) == "epoch 0"  # while the job still runs
            registry.log_goes_on.set()
            assert await anext(lines) == "epoch 1"
    registry.log_goes_on.clear()
