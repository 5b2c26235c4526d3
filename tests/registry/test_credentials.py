"""The registry trusts only the gateway: a request needs the gateway's signed, unexpired
credential, and the actor is the credential's subject, never a plain header."""

import codecs
import json

import httpx
import pytest

from shared.auth import CREDENTIAL_HEADER, Caller, CredentialSigner
from shared.errors import PROBLEM_BASE
from tests.credentials import credential_headers


def _direct(app, headers: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://registry/api/v1/registry",
        headers=headers,
    )


def _refused(response: httpx.Response, kind: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEM_BASE + kind


FORGED = CredentialSigner(["a-key-the-gateway-never-had-0123456789abcdef"]).sign(
    Caller(subject="mallory", role=None)
)


@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"X-Modelplane-Actor": "mallory"}, "credential-required"),
        ({CREDENTIAL_HEADER: FORGED}, "invalid-credential"),
        ({CREDENTIAL_HEADER: "not.a.jwt"}, "invalid-credential"),
        (credential_headers("mallory", lifetime_seconds=-5), "invalid-credential"),
    ],
    ids=["none", "forged", "garbage", "expired"],
)
async def test_direct_calls_without_a_valid_credential_are_refused(
    registry_app, model, headers, kind
):
    async with _direct(registry_app, headers) as mallory:
        _refused(await mallory.get("/models"), kind)
        _refused(await mallory.get(f"/models/{model['id']}"), kind)
        _refused(
            await mallory.post("/models", json={"name": "x", "project_id": model["project_id"]}),
            kind,
        )
        versions = await mallory.post(f"/models/{model['id']}/versions", json={})
        _refused(versions, kind)


async def test_probes_and_the_openapi_document_need_no_credential(registry_app):
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=registry_app), base_url="http://registry"
    ) as anyone:
        assert (await anyone.get("/healthz")).status_code == 200
        assert (await anyone.get("/readyz")).status_code == 200
        assert (await anyone.get("/openapi.json")).status_code == 200


async def test_the_actor_is_the_credentials_subject_not_the_actor_header(registry_app, model):
    headers = credential_headers("carol@example.com") | {"X-Modelplane-Actor": "mallory"}
    async with _direct(registry_app, headers) as carol:
        r = await carol.post(f"/models/{model['id']}/versions", json={})
    assert r.status_code == 201, r.text
    assert r.json()["created_by"] == "carol@example.com"


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: codecs.BOM_UTF8 + text.encode(),
        lambda text: text.encode("utf-16"),
        lambda text: text.encode("utf-16-le"),
        lambda text: text.encode("utf-32"),
        lambda text: text.encode("utf-32-be"),
    ],
    ids=["utf-8-bom", "utf-16", "utf-16-le", "utf-32", "utf-32-be"],
)
async def test_bodies_that_are_not_utf8_json_are_refused(client, model, encode):
    version = (await client.post(f"/models/{model['id']}/versions", json={})).json()
    body = encode(json.dumps({"stage": "production"}))
    r = await client.post(
        f"/models/versions/{version['id']}/transition",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 415, r.text
    assert r.json()["type"] == PROBLEM_BASE + "unsupported-encoding"
    assert (await client.get(f"/models/{model['id']}")).json()["versions"][0]["stage"] == "none"


async def test_a_body_declared_in_another_charset_is_refused(client, model):
    r = await client.post(
        f"/models/{model['id']}/versions",
        content=b"{}",
        headers={"Content-Type": "application/json; charset=utf-16"},
    )
    assert r.status_code == 415, r.text
