"""`/api/v1/registry/...` reaches the registry with the caller's signed credential; what the
caller may do there is the registry's to decide (tests/e2e/one_platform/test_roles.py)."""

import codecs
import uuid

import httpx

from shared.auth import Role
from shared.local_infra import free_port
from tests.gateway.conftest import (
    ADMIN,
    MISSING_MODEL_PROBLEM,
    FakeRegistry,
    forwarded_caller,
    running_gateway,
)


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
    caller = forwarded_caller(seen)
    assert caller.subject.startswith("viewer-") and caller.role == Role.VIEWER
    assert "x-modelplane-actor" not in seen["headers"]
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


async def test_a_problem_from_the_registry_passes_through_untouched(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    reply = await client.get("/api/v1/registry/models/missing", headers=await token_for("viewer"))
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.content == MISSING_MODEL_PROBLEM


async def test_a_method_the_registry_does_not_take_answers_405_with_its_allow_header(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    reply = await client.request("TRACE", "/api/v1/registry/models", headers=ADMIN)
    assert reply.status_code == 405
    allowed = {method.strip() for method in reply.headers["allow"].split(",")}
    assert allowed == {"DELETE", "GET", "HEAD", "PATCH", "POST", "PUT"}


async def test_the_gateway_never_reads_a_body_to_decide_and_passes_it_on_untouched(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    path = f"/api/v1/registry/models/versions/{uuid.uuid4()}/transition"
    raw = b'{"stage": "production", "comment": "ship it"}'
    editor = await token_for("editor")
    reply = await client.post(
        path, content=raw, headers={**editor, "Content-Type": "application/json"}
    )
    assert reply.status_code == 200  # the fake registry decides nothing; the real one refuses
    [seen] = registry.requests
    assert seen["body"] == raw.decode()
    assert forwarded_caller(seen).role == Role.EDITOR


async def test_a_body_that_is_not_utf8_json_is_refused_before_it_is_forwarded(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for
) -> None:
    path = f"/api/v1/registry/models/versions/{uuid.uuid4()}/transition"
    approver = await token_for("approver")
    text = '{"stage": "production"}'
    for body in (codecs.BOM_UTF8 + text.encode(), text.encode("utf-16"), text.encode("utf-32")):
        reply = await client.post(
            path, content=body, headers={**approver, "Content-Type": "application/json"}
        )
        assert reply.status_code == 415, body
        assert reply.json()["type"] == "https://modelplane.dev/problems/unsupported-encoding"
    assert registry.requests == []


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


async def test_lineage_of_an_id_that_is_no_uuid_is_404_and_asks_no_service(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    """`..` as a node id once became another path of the service's (its list): a 500."""
    for kind in ("dataset_version", "job", "model_version", "deployment"):
        for node in ("%2e%2e", "..%2F..%2Fmodels", "not-a-uuid"):
            before = len(registry.requests)
            reply = await client.get(f"/api/v1/lineage/{kind}/{node}", headers=ADMIN)
            assert reply.status_code == 404, (kind, node, reply.text)
            assert reply.headers["content-type"] == "application/problem+json"
            assert len(registry.requests) == before
