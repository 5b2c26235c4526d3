"""The serving service on the platform as `make up` runs it: reached through the gateway by its
table entry alone, roles checked by the credential the gateway signs."""

import httpx

from tests.e2e.test_use_cases import token_for

pytestmark = __import__("pytest").mark.e2e


async def test_serving_is_forwarded_documented_and_ready(platform, admin):
    viewer = await token_for(admin, "sam", "viewer")
    r = await admin.get("/api/v1/serving/endpoints", headers=viewer)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
    async with httpx.AsyncClient(base_url=platform.gateway_url) as anonymous:
        assert (await anonymous.get("/api/v1/serving/endpoints")).status_code == 401
        ready = (await anonymous.get("/readyz")).json()
        spec = (await anonymous.get("/api/v1/openapi.json")).json()
    assert ready["checks"]["serving"] is True
    assert "/api/v1/serving/endpoints/{endpoint_id}/predict" in spec["paths"]
