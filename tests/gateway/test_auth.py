"""Bearer tokens: nothing reaches a service without one, and revoked ones stop working."""

import uuid

import httpx
import pytest

from tests.gateway.conftest import ADMIN, FakeRegistry, bearer


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer mp_not-a-real-token"},
        {"Authorization": "Basic YWxpY2U6c2VjcmV0"},
        {"Authorization": "Bearer"},
    ],
)
async def test_without_a_valid_token_the_caller_gets_401_and_no_service_is_called(
    client: httpx.AsyncClient, registry: FakeRegistry, headers: dict[str, str]
) -> None:
    for method, path in [
        ("GET", "/api/v1/registry/models"),
        ("POST", "/api/v1/registry/models/versions/v1/transition"),
        ("GET", "/api/v1/projects"),
        ("GET", "/api/v1/tokens"),
    ]:
        reply = await client.request(method, path, headers=headers, json={"stage": "production"})
        assert reply.status_code == 401, (method, path)
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.headers["www-authenticate"] == "Bearer"
        assert reply.json()["type"] == "https://modelplane.dev/problems/unauthorized"
    assert registry.requests == []


async def test_the_configured_admin_token_acts_as_admin(client: httpx.AsyncClient) -> None:
    reply = await client.get("/api/v1/tokens", headers=ADMIN)
    assert reply.status_code == 200


async def test_a_created_token_works_until_it_is_revoked(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    subject = f"carol-{uuid.uuid4().hex[:6]}"
    created = await client.post(
        "/api/v1/tokens", json={"subject": subject, "role": "viewer"}, headers=ADMIN
    )
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith("mp_")
    assert (body["subject"], body["role"]) == (subject, "viewer")
    token = bearer(body["token"])

    assert (await client.get("/api/v1/registry/models", headers=token)).status_code == 200
    assert registry.requests[-1]["headers"]["x-modelplane-actor"] == subject

    listed = (await client.get("/api/v1/tokens", headers=ADMIN)).json()
    mine = [t for t in listed["items"] if t["id"] == body["id"]]
    assert mine and "token" not in mine[0] and "token_hash" not in mine[0]
    assert mine[0]["revoked_at"] is None

    assert (await client.delete(f"/api/v1/tokens/{body['id']}", headers=ADMIN)).status_code == 204
    # Straight after the revocation: this process does not serve it from its cache.
    assert (await client.get("/api/v1/registry/models", headers=token)).status_code == 401
    listed = (await client.get("/api/v1/tokens", headers=ADMIN)).json()
    assert [t["revoked_at"] for t in listed["items"] if t["id"] == body["id"]] != [None]


async def test_revoking_an_unknown_token_is_404(client: httpx.AsyncClient) -> None:
    reply = await client.delete(f"/api/v1/tokens/{uuid.uuid4()}", headers=ADMIN)
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("role", ["viewer", "editor", "approver"])
async def test_only_admins_manage_tokens(client: httpx.AsyncClient, token_for, role: str) -> None:
    headers = await token_for(role)
    assert (await client.get("/api/v1/tokens", headers=headers)).status_code == 403
    reply = await client.post(
        "/api/v1/tokens", json={"subject": "x", "role": "admin"}, headers=headers
    )
    assert reply.status_code == 403
    assert reply.json()["type"] == "https://modelplane.dev/problems/forbidden"


async def test_a_token_with_an_unknown_role_is_rejected(client: httpx.AsyncClient) -> None:
    reply = await client.post(
        "/api/v1/tokens", json={"subject": "x", "role": "owner"}, headers=ADMIN
    )
    assert reply.status_code == 422
