"""`/api/v1/registry/...` reaches the registry with the caller as actor, or is refused first."""

import uuid

import httpx

from shared.local_infra import free_port
from tests.gateway.conftest import ADMIN, MISSING_MODEL_PROBLEM, FakeRegistry, running_gateway


async def test_a_read_is_forwarded_with_query_actor_and_correlation_id(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    viewer = await token_for("viewer")
    reply = await client.get(
        "/api/v1/registry/models/summary",
        params={"limit": "5", "name": "a b"},
        headers={
            **viewer,
            "X-Correlation-Id": "corr-123",
            "X-Modelplane-Actor": "mallory",  # a caller cannot choose its actor
            "If-Match": '"3"',
        },
    )
    assert reply.status_code == 200
    assert reply.headers["etag"] == '"7"'
    assert reply.headers["x-correlation-id"] == "corr-123"
    [seen] = registry.requests
    assert seen["method"] == "GET"
    assert seen["path"] == "/api/v1/registry/models/summary"
    assert seen["query"] == "limit=5&name=a+b"
    assert seen["headers"]["x-modelplane-actor"].startswith("viewer-")
    assert seen["headers"]["x-correlation-id"] == "corr-123"
    assert seen["headers"]["if-match"] == '"3"'
    assert "authorization" not in seen["headers"]
    assert reply.json() == seen


async def test_a_correlation_id_is_made_when_the_caller_sends_none(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    reply = await client.get("/api/v1/registry/models", headers=await token_for("viewer"))
    assert registry.requests[0]["headers"]["x-correlation-id"] == reply.headers["x-correlation-id"]


async def test_registering_a_model_in_an_existing_project_passes_body_status_and_location(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for, project: dict
) -> None:
    raw = f'{{"name": "churn", "project_id": "{project["id"]}"}}'.encode()
    reply = await client.post(
        "/api/v1/registry/models",
        content=raw,
        headers={**await token_for("editor"), "Content-Type": "application/json"},
    )
    assert reply.status_code == 201
    assert reply.headers["etag"] == '"1"'
    assert reply.headers["location"] == "/api/v1/registry/models/m-1"
    assert "x-internal" not in reply.headers
    [seen] = registry.requests
    assert seen["body"] == raw.decode()  # passed on byte for byte
    assert seen["headers"]["content-type"] == "application/json"


async def test_registering_a_model_in_an_unknown_project_is_422_and_the_registry_is_not_called(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    editor = await token_for("editor")
    unknown = await client.post(
        "/api/v1/registry/models",
        json={"name": "churn", "project_id": str(uuid.uuid4())},
        headers=editor,
    )
    assert unknown.status_code == 422
    assert unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["type"] == "https://modelplane.dev/problems/unknown-project"
    for body in ({"name": "churn"}, {"name": "churn", "project_id": "nope"}):
        reply = await client.post("/api/v1/registry/models", json=body, headers=editor)
        assert reply.status_code == 422
    assert registry.requests == []


async def test_a_problem_from_the_registry_passes_through_untouched(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    reply = await client.get("/api/v1/registry/models/missing", headers=await token_for("viewer"))
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.content == MISSING_MODEL_PROBLEM


async def test_a_viewer_may_read_but_not_write(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    viewer = await token_for("viewer")
    for method in ("PATCH", "DELETE", "PUT"):
        reply = await client.request(method, "/api/v1/registry/models/abc", headers=viewer, json={})
        assert reply.status_code == 403, method
    assert registry.requests == []


async def test_only_an_approver_moves_a_version_to_production(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    path = f"/api/v1/registry/models/versions/{uuid.uuid4()}/transition"
    editor, approver = await token_for("editor"), await token_for("approver")
    to_production = {"stage": "production", "comment": "ship it"}

    refused = await client.post(path, json=to_production, headers=editor)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert registry.requests == []

    assert (await client.post(path, json={"stage": "staging"}, headers=editor)).status_code == 200
    assert (await client.post(path, json=to_production, headers=approver)).status_code == 200
    assert [r["headers"]["x-modelplane-actor"].split("-")[0] for r in registry.requests] == [
        "editor",
        "approver",
    ]


async def test_dot_segments_cannot_leave_the_registry_prefix(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    viewer = await token_for("viewer")
    reply = await client.get("/api/v1/registry/models/%2e%2e/%2e%2e/readyz", headers=viewer)
    assert reply.status_code == 404
    assert registry.requests == []


async def test_an_unreachable_registry_is_503(gateway_settings) -> None:
    settings = gateway_settings(registry_url=f"http://127.0.0.1:{free_port()}")
    async with running_gateway(settings) as down:
        reply = await down.get("/api/v1/registry/models", headers=ADMIN)
    assert reply.status_code == 503
    assert reply.json()["type"] == "https://modelplane.dev/problems/service-unavailable"
