"""`/api/v1/jobs...` and `/api/v1/gpu-types...` reach the jobs service with the caller's
credential; the jobs service decides what the caller may do (tests/e2e/one_platform/test_roles.py)."""

import asyncio
import uuid

import httpx

from services.gateway.app import create_app
from shared.auth import Role
from tests.gateway.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    FakeRegistry,
    bearer,
    forwarded_caller,
    serving,
)


async def test_reads_are_forwarded_with_the_callers_credential(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    viewer = await token_for("viewer")
    reply = await client.get("/api/v1/gpu-types", params={"env": "prod"}, headers=viewer)
    assert reply.status_code == 200, reply.text
    reply = await client.get("/api/v1/jobs/abc/logs", headers=viewer)
    assert reply.status_code == 200
    assert [(r["method"], r["path"], r["query"]) for r in registry.requests] == [
        ("GET", "/api/v1/gpu-types", "env=prod"),
        ("GET", "/api/v1/jobs/abc/logs", ""),
    ]
    assert forwarded_caller(registry.requests[0]).subject.startswith("viewer-")
    assert (await client.get("/api/v1/jobs")).status_code == 401


async def test_writes_go_to_the_jobs_service_which_decides_who_may(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    option = {"id": "a100", "label": "A100", "env": "prod"}
    reply = await client.post("/api/v1/gpu-types", json=option, headers=await token_for("viewer"))
    assert reply.status_code == 200
    body = {"name": "train", "project_id": str(uuid.uuid4()), "env": "dev", "command": ["true"]}
    assert (await client.post("/api/v1/jobs", json=body, headers=ADMIN)).status_code == 200
    assert [r["path"] for r in registry.requests] == ["/api/v1/gpu-types", "/api/v1/jobs"]
    assert forwarded_caller(registry.requests[0]).role == Role.VIEWER
    assert forwarded_caller(registry.requests[1]).is_platform_admin


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
