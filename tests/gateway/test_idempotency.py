"""`Idempotency-Key` on the gateway's POSTs: a retry gets the first reply and never reaches the
service again; another body is 422; keys are each caller's, expire, and are shared by every
gateway process on the database."""

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from services.gateway.settings import GatewaySettings
from shared.db import connect_raw
from shared.errors import PROBLEM_BASE
from tests.gateway.conftest import ADMIN, FakeRegistry, every_backend, running_gateway
from tests.gateway.test_upstream_connections import ClosingService

MODELS = "/api/v1/registry/models"


def keyed(key: str, auth: dict[str, str] = ADMIN) -> dict[str, str]:
    return {**auth, "Idempotency-Key": key}


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


def forwarded(registry: FakeRegistry, path: str = MODELS) -> list[dict]:
    return [r for r in registry.requests if r["method"] == "POST" and r["path"] == path]


async def stored_keys(database_url: str, key: str) -> list[str]:
    conn = await connect_raw(database_url)
    try:
        rows = await conn.fetch("SELECT subject FROM gateway.idempotency_keys WHERE key = $1", key)
    finally:
        await conn.close()
    return sorted(row["subject"] for row in rows)


def assert_problem(reply: httpx.Response, status: int, kind: str) -> None:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["type"] == PROBLEM_BASE + kind


async def test_a_retry_gets_the_first_reply_without_reaching_the_service(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    key = new_key()
    first = await client.post(MODELS, json={"name": "m"}, headers=keyed(key))
    again = await client.post(MODELS, json={"name": "m"}, headers=keyed(key))

    assert first.status_code == again.status_code == 201
    assert again.content == first.content  # the service's first body, its credential included
    for header in ("etag", "location", "content-type"):
        assert again.headers[header] == first.headers[header]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(forwarded(registry)) == 1
    assert "idempotency-key" not in forwarded(registry)[0]["headers"]


async def test_posts_without_a_key_each_reach_the_service(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    for _ in range(2):
        assert (await client.post(MODELS, json={"name": "m"}, headers=ADMIN)).status_code == 201
    assert len(forwarded(registry)) == 2


async def test_the_same_key_with_another_body_or_path_is_refused(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    key = new_key()
    assert (await client.post(MODELS, json={"name": "a"}, headers=keyed(key))).status_code == 201

    other_body = await client.post(MODELS, json={"name": "b"}, headers=keyed(key))
    other_path = await client.post("/api/v1/jobs", json={"name": "a"}, headers=keyed(key))
    other_query = await client.post(f"{MODELS}?x=1", json={"name": "a"}, headers=keyed(key))

    for reply in (other_body, other_path, other_query):
        assert_problem(reply, 422, "idempotency-key-reused")
    assert len(registry.requests) == 1


async def test_keys_are_each_callers_own(
    client: httpx.AsyncClient, registry: FakeRegistry, token_for, database_url: str
) -> None:
    key = new_key()
    editor = await token_for("editor")
    mine = await client.post(MODELS, json={"name": "m"}, headers=keyed(key))
    theirs = await client.post(MODELS, json={"name": "other"}, headers=keyed(key, editor))

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["body"] != theirs.json()["body"]
    assert len(forwarded(registry)) == 2
    assert len(await stored_keys(database_url, key)) == 2


@pytest.mark.parametrize(
    "value", [b"", b"x" * 256, "clé".encode("latin-1"), b"tab\there", b"del\x7f"]
)
async def test_a_malformed_key_is_refused(
    client: httpx.AsyncClient, registry: FakeRegistry, value: bytes
) -> None:
    reply = await client.post(
        MODELS, json={"name": "m"}, headers=[*ADMIN.items(), ("Idempotency-Key", value)]
    )
    assert_problem(reply, 400, "invalid-idempotency-key")
    assert registry.requests == []


async def test_two_keys_on_one_request_are_refused(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    headers = [*ADMIN.items(), ("Idempotency-Key", "a"), ("Idempotency-Key", "b")]
    assert_problem(
        await client.post(MODELS, json={}, headers=headers), 400, "invalid-idempotency-key"
    )
    assert registry.requests == []


async def test_a_longest_key_is_taken(client: httpx.AsyncClient, registry: FakeRegistry) -> None:
    key = "k" * 219 + "-" + uuid.uuid4().hex[:35]
    for _ in range(2):
        assert (await client.post(MODELS, json={}, headers=keyed(key))).status_code == 201
    assert len(forwarded(registry)) == 1


async def test_a_request_without_a_token_is_401_and_holds_no_key(
    client: httpx.AsyncClient, registry: FakeRegistry, database_url: str
) -> None:
    key = new_key()
    reply = await client.post(MODELS, json={}, headers={"Idempotency-Key": key})
    assert_problem(reply, 401, "unauthorized")
    assert await stored_keys(database_url, key) == []


async def test_a_second_request_while_the_first_is_under_way_is_409(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    key = new_key()
    path = f"{MODELS}/held"
    first = asyncio.create_task(client.post(path, json={"n": 1}, headers=keyed(key)))
    while not forwarded(registry, path):
        await asyncio.sleep(0.01)

    during = await client.post(path, json={"n": 1}, headers=keyed(key))
    assert_problem(during, 409, "idempotency-key-in-use")
    assert during.headers["retry-after"] == "1"

    registry.held.set()
    answered = await first
    after = await client.post(path, json={"n": 1}, headers=keyed(key))
    assert answered.status_code == after.status_code == 200
    assert after.content == answered.content
    assert len(forwarded(registry, path)) == 1


async def test_a_services_error_reply_is_kept_too(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    key = new_key()
    path = f"{MODELS}/missing/versions"
    first = await client.post(path, json={}, headers=keyed(key))
    again = await client.post(path, json={}, headers=keyed(key))
    assert first.status_code == again.status_code == 404
    assert again.content == first.content
    assert again.headers["content-type"] == "application/problem+json"
    assert len(forwarded(registry, path)) == 1


async def test_the_gateways_own_routes_replay_too(
    client: httpx.AsyncClient, database_url: str
) -> None:
    key = new_key()
    body = {"name": f"proj-{uuid.uuid4().hex[:8]}"}
    first = await client.post("/api/v1/projects", json=body, headers=keyed(key))
    # Without the key the same name is a conflict: the replay did not create it twice.
    again = await client.post("/api/v1/projects", json=body, headers=keyed(key))
    plain = await client.post("/api/v1/projects", json=body, headers=ADMIN)

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert plain.status_code == 409
    conn = await connect_raw(database_url)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM gateway.projects WHERE name = $1", body["name"]
        )
    finally:
        await conn.close()
    assert count == 1


async def test_a_chunked_body_is_hashed_as_it_passes(
    client: httpx.AsyncClient, registry: FakeRegistry
) -> None:
    key = new_key()

    async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    headers = {**keyed(key), "Content-Type": "application/json"}
    first = await client.post(MODELS, content=chunks(b'{"name":', b'"m"}'), headers=headers)
    again = await client.post(MODELS, content=chunks(b'{"na', b'me":"m"}'), headers=headers)
    other = await client.post(MODELS, content=chunks(b'{"name":', b'"n"}'), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert_problem(other, 422, "idempotency-key-reused")
    assert len(forwarded(registry)) == 1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_a_service_never_reached_frees_the_key(
    gateway_settings: Callable[..., GatewaySettings],
    registry: FakeRegistry,
    client: httpx.AsyncClient,
    database_url: str,
) -> None:
    key = new_key()
    down = gateway_settings(service_urls=every_backend(f"http://127.0.0.1:{_closed_port()}"))
    async with running_gateway(down) as unreachable:
        reply = await unreachable.post(MODELS, json={"name": "m"}, headers=keyed(key))
    assert_problem(reply, 503, "service-unavailable")
    assert await stored_keys(database_url, key) == []

    retried = await client.post(MODELS, json={"name": "m"}, headers=keyed(key))
    assert retried.status_code == 201
    assert "idempotent-replayed" not in retried.headers
    assert len(forwarded(registry)) == 1


async def test_two_gateway_processes_share_the_keys(
    gateway_settings: Callable[..., GatewaySettings],
    registry: FakeRegistry,
    client: httpx.AsyncClient,
) -> None:
    key = new_key()
    first = await client.post(MODELS, json={"name": "m"}, headers=keyed(key))
    async with running_gateway(gateway_settings(service_urls=every_backend(registry.url))) as b:
        again = await b.post(MODELS, json={"name": "m"}, headers=keyed(key))
        other = await b.post(MODELS, json={"name": "x"}, headers=keyed(key))
    assert again.status_code == 201
    assert again.content == first.content
    assert again.headers["idempotent-replayed"] == "true"
    assert_problem(other, 422, "idempotency-key-reused")
    assert len(forwarded(registry)) == 1


async def test_a_key_expires_and_is_pruned(
    gateway_settings: Callable[..., GatewaySettings], registry: FakeRegistry, database_url: str
) -> None:
    key = new_key()
    settings = gateway_settings(
        service_urls=every_backend(registry.url),
        idempotency_key_seconds=1.0,
        idempotency_prune_seconds=0.2,
    )
    async with running_gateway(settings) as short:
        first = await short.post(MODELS, json={"name": "m"}, headers=keyed(key))
        assert (await short.post(MODELS, json={"name": "m"}, headers=keyed(key))).headers.get(
            "idempotent-replayed"
        ) == "true"
        await asyncio.sleep(1.2)
        # Past its time the key is new again, whichever body it comes with.
        later = await short.post(MODELS, json={"name": "n"}, headers=keyed(key))
        assert first.status_code == later.status_code == 201
        assert "idempotent-replayed" not in later.headers
        assert len(forwarded(registry)) == 2
        assert await stored_keys(database_url, key) == ["admin"]
        for _ in range(50):
            if not await stored_keys(database_url, key):
                break
            await asyncio.sleep(0.1)
        assert await stored_keys(database_url, key) == []


async def test_every_post_documents_the_header(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/v1/openapi.json")).json()
    posts = [(path, item["post"]) for path, item in document["paths"].items() if "post" in item]
    assert len(posts) > 3
    for path, operation in posts:
        names = [p["name"] for p in operation.get("parameters", [])]
        assert names.count("Idempotency-Key") == 1, path
        assert "idempotency-key-reused" in operation["responses"]["422"]["description"], path
        assert "idempotency-key-in-use" in operation["responses"]["409"]["description"], path
        assert "invalid-idempotency-key" in operation["responses"]["400"]["description"], path
    tokens = document["paths"]["/api/v1/tokens"]["post"]["responses"]["409"]["description"]
    assert "idempotent-reply-not-kept" in tokens
    for item in document["paths"].values():
        for method in ("get", "put", "patch", "delete"):
            names = [p.get("name") for p in item.get(method, {}).get("parameters", [])]
            assert "Idempotency-Key" not in names


async def test_a_write_whose_outcome_is_unknown_keeps_its_503(gateway_settings) -> None:
    """The service closed the connection under the request: it may have applied it, so a
    retry is answered the same 503 rather than sent again."""
    async with ClosingService().running() as service:
        settings = gateway_settings(service_urls=every_backend(service.url))
        async with running_gateway(settings) as gateway:
            key = new_key()
            first = await gateway.post(f"{MODELS}/a", json={}, headers=ADMIN)
            lost = await gateway.post(f"{MODELS}/b", json={}, headers=keyed(key))
            again = await gateway.post(f"{MODELS}/b", json={}, headers=keyed(key))
    assert first.status_code == 200
    assert_problem(lost, 503, "service-unavailable")
    assert_problem(again, 503, "service-unavailable")
    assert again.headers["idempotent-replayed"] == "true"
    assert [line for _, line in service.seen].count(f"POST {MODELS}/b HTTP/1.1") == 1


async def test_a_new_tokens_plaintext_is_never_kept(
    client: httpx.AsyncClient, database_url: str
) -> None:
    key = new_key()
    body = {"subject": f"robot-{uuid.uuid4().hex[:6]}", "role": "viewer"}
    first = await client.post("/api/v1/tokens", json=body, headers=keyed(key))
    again = await client.post("/api/v1/tokens", json=body, headers=keyed(key))

    assert first.status_code == 201
    assert_problem(again, 409, "idempotent-reply-not-kept")
    assert again.json()["first_status"] == 201
    tokens = (await client.get("/api/v1/tokens", headers=ADMIN)).json()
    assert [t["subject"] for t in tokens["items"]].count(body["subject"]) == 1
    conn = await connect_raw(database_url)
    try:
        kept = await conn.fetchval(
            "SELECT count(*) FROM gateway.idempotency_keys WHERE position($1 in body) > 0",
            first.json()["token"].encode(),
        )
    finally:
        await conn.close()
    assert kept == 0


async def test_keys_that_cannot_be_kept_are_503_not_500(
    client: httpx.AsyncClient, registry: FakeRegistry, database_url: str
) -> None:
    conn = await connect_raw(database_url)
    try:
        await conn.execute("ALTER TABLE gateway.idempotency_keys RENAME TO idempotency_keys_away")
        reply = await client.post(MODELS, json={"name": "m"}, headers=keyed(new_key()))
    finally:
        await conn.execute("ALTER TABLE gateway.idempotency_keys_away RENAME TO idempotency_keys")
        await conn.close()
    assert_problem(reply, 503, "service-unavailable")
    assert registry.requests == []


async def test_a_key_held_by_a_request_that_died_is_taken_after_the_lock(
    client: httpx.AsyncClient, registry: FakeRegistry, database_url: str
) -> None:
    """A gateway that died mid-request left its claim: past the lock, a retry goes through."""
    stale, fresh = new_key(), new_key()
    conn = await connect_raw(database_url)
    try:
        for key, age in ((stale, "1 hour"), (fresh, "1 second")):
            await conn.execute(
                "INSERT INTO gateway.idempotency_keys (subject, key, claim, method, target,"
                f" created_at) VALUES ('admin', $1, $2, 'POST', $3, now() - interval '{age}')",
                key,
                uuid.uuid4(),
                MODELS,
            )
    finally:
        await conn.close()
    taken = await client.post(MODELS, json={"name": "m"}, headers=keyed(stale))
    held = await client.post(MODELS, json={"name": "m"}, headers=keyed(fresh))
    assert taken.status_code == 201
    assert_problem(held, 409, "idempotency-key-in-use")
    assert len(forwarded(registry)) == 1
