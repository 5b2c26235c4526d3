"""Bearer tokens: nothing reaches a service without one, and revoked ones stop working."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from services.gateway import store
from services.gateway.app import create_app
from services.gateway.auth import Authenticator
from services.gateway.settings import GatewaySettings
from shared.errors import Unauthorized
from tests.credentials import SIGNER
from tests.gateway.conftest import ADMIN, FakeRegistry, bearer, forwarded_caller


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
    assert forwarded_caller(registry.requests[-1]).subject == subject

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


@pytest.fixture
async def forgetful_gateway(
    gateway_settings: Callable[..., GatewaySettings], fake_registry: FakeRegistry
) -> AsyncIterator[FastAPI]:
    """A gateway that remembers no token: every request finds its token expired."""
    app = create_app(
        gateway_settings(
            registry_url=fake_registry.url, jobs_url=fake_registry.url, token_cache_seconds=0
        )
    )
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
def slow_lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Token lookups take 100 ms more once they have read the token; returns the hashes read."""
    lookups: list[str] = []
    find_active_token = store.find_active_token

    async def slow_lookup(session, token_hash):
        row = await find_active_token(session, token_hash)
        lookups.append(token_hash)
        await asyncio.sleep(0.1)
        return row

    monkeypatch.setattr(store, "find_active_token", slow_lookup)
    return lookups


async def issue(app: FastAPI, subject: str) -> tuple[str, uuid.UUID]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        reply = await client.post(
            "/api/v1/tokens", json={"subject": subject, "role": "editor"}, headers=ADMIN
        )
    assert reply.status_code == 201, reply.text
    return reply.json()["token"], uuid.UUID(reply.json()["id"])


async def revoke(app: FastAPI, authenticator: Authenticator, token_id: uuid.UUID) -> None:
    async with app.state.runtime.sessionmaker() as session, session.begin():
        assert await store.revoke_token(session, token_id)
    authenticator.forget(token_id)


async def authenticate_32(authenticator: Authenticator, token: str) -> list:
    calls = [authenticator.authenticate(f"Bearer {token}") for _ in range(32)]
    return await asyncio.gather(*calls, return_exceptions=True)


async def test_requests_that_find_a_token_expired_wait_for_one_lookup_together(
    forgetful_gateway: FastAPI, slow_lookups: list[str]
) -> None:
    subject = f"dave-{uuid.uuid4().hex[:6]}"
    token, token_id = await issue(forgetful_gateway, subject)
    authenticator: Authenticator = forgetful_gateway.state.authenticator

    found = await authenticate_32(authenticator, token)
    assert len(slow_lookups) == 1
    assert {(a.caller.subject, a.caller.token_id) for a in found} == {(subject, token_id)}

    # A caller that gives up leaves the lookup to those still waiting.
    impatient = asyncio.create_task(authenticator.authenticate(f"Bearer {token}"))
    await asyncio.sleep(0.03)
    patient = asyncio.create_task(authenticator.authenticate(f"Bearer {token}"))
    await asyncio.sleep(0)
    impatient.cancel()
    assert (await patient).caller.token_id == token_id
    assert len(slow_lookups) == 2

    unknown = await authenticate_32(authenticator, "mp_never-issued")
    assert len(slow_lookups) == 3
    assert all(isinstance(e, Unauthorized) for e in unknown)


async def test_a_lookup_that_read_a_token_before_its_revocation_answers_only_its_waiters(
    forgetful_gateway: FastAPI, slow_lookups: list[str]
) -> None:
    for remember_seconds in (0, 30):
        token, token_id = await issue(forgetful_gateway, f"erin-{uuid.uuid4().hex[:6]}")
        authenticator = Authenticator(
            forgetful_gateway.state.runtime.sessionmaker, None, SIGNER, remember_seconds
        )
        slow_lookups.clear()
        before = asyncio.create_task(authenticator.authenticate(f"Bearer {token}"))
        # Until its lookup has read the token, still active (or failed: `await before` says why).
        while not slow_lookups and not before.done():
            await asyncio.sleep(0.005)
        await revoke(forgetful_gateway, authenticator, token_id)
        if remember_seconds:  # and once it has answered, nothing remembers what it read
            assert (await before).caller.token_id == token_id
            after = await authenticate_32(authenticator, token)
        else:  # the requests after the revocation wait for a lookup of their own
            after = await authenticate_32(authenticator, token)
            assert (await before).caller.token_id == token_id
        assert len(slow_lookups) == 2
        assert all(isinstance(e, Unauthorized) for e in after)
