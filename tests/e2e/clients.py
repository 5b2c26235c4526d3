"""Who calls the platform in the end-to-end tests: the admin, a token of a role, and a project of
one's own."""

import secrets
import uuid

import httpx

# The shared platform's admin (one_platform/): a bootstrap credential, not a stored token, so
# neither a test nor a fuzzed `DELETE /tokens/{id}` can revoke it.
ADMIN_TOKEN = f"mp_e2e_{secrets.token_urlsafe(24)}"


async def token_for(admin: httpx.AsyncClient, subject: str, role: str) -> dict[str, str]:
    r = await admin.post("/api/v1/tokens", json={"subject": subject, "role": role})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


async def new_project(admin: httpx.AsyncClient) -> str:
    r = await admin.post("/api/v1/projects", json={"name": f"proj-{uuid.uuid4().hex[:8]}"})
    assert r.status_code == 201, r.text
    return r.json()["id"]
