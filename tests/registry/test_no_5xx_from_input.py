"""No input answers 5xx (issue 33): null where a field is not nullable, NUL characters and
lone surrogates, integers past a bigint, NaN and Infinity are each refused with 422 naming
the field, and nothing of them is stored."""

import base64
import json
import uuid
from urllib.parse import quote

import asyncpg
import pytest

from tests.registry.conftest import ScratchDatabase
from tests.registry.test_api import new_version, problem

NUL = "a\u0000b"
JSON = {"Content-Type": "application/json"}


def refused(response, field: str) -> dict:
    body = problem(response, 422, "invalid-input")
    assert field in body["detail"], body
    return body


async def test_null_on_a_field_that_is_not_nullable_is_422_and_every_list_still_answers(
    client, model
):
    version = await new_version(client, model["id"], tags=["a"], metadata={"k": 1})
    for field in ("tags", "name"):
        refused(await client.patch(f"/models/{model['id']}", json={field: None}), f"body.{field}")
    for field in ("tags", "metadata"):
        refused(
            await client.patch(f"/models/versions/{version['id']}", json={field: None}),
            f"body.{field}",
        )
    refused(
        await client.post(f"/models/{model['id']}/versions", json={"metrics": None}), "body.metrics"
    )
    refused(
        await client.post("/models", json={"name": None, "project_id": model["project_id"]}),
        "body.name",
    )

    # What may be null still may: a description is cleared.
    r = await client.patch(f"/models/{model['id']}", json={"description": None})
    assert r.status_code == 200 and r.json()["tags"] == model["tags"]
    r = await client.patch(f"/models/versions/{version['id']}", json={"description": None})
    assert r.status_code == 200
    assert (r.json()["tags"], r.json()["metadata"]) == (["a"], {"k": 1})
    for listing in (
        "/models",
        f"/models?project_id={model['project_id']}",
        "/models/summary",
        f"/models/{model['id']}",
        f"/models/{model['id']}/versions",
    ):
        assert (await client.get(listing)).status_code == 200, listing


@pytest.mark.parametrize("bad", [NUL, "a\ud800b"], ids=["nul", "lone-surrogate"])
async def test_a_string_postgres_cannot_store_is_refused_naming_its_field(client, model, bad):
    version = await new_version(client, model["id"])
    project = model["project_id"]
    writes = [
        ("POST", "/models", {"name": bad, "project_id": project}, "body.name"),
        (
            "POST",
            "/models",
            {"name": "n", "project_id": project, "description": bad},
            "body.description",
        ),
        ("POST", "/models", {"name": "n", "project_id": project, "tags": [bad]}, "body.tags"),
        ("POST", "/models", {"name": "n", "project_id": project, "tags": {"k": bad}}, "body.tags"),
        ("POST", "/models", {"name": "n", "project_id": project, "tags": {bad: "v"}}, "body.tags"),
        ("PATCH", f"/models/{model['id']}", {"name": bad}, "body.name"),
        ("PATCH", f"/models/{model['id']}", {"tags": [bad]}, "body.tags"),
        *(
            ("POST", f"/models/{model['id']}/versions", {field: bad}, f"body.{field}")
            for field in ("version", "description", "run_id", "artifact_uri")
        ),
        ("POST", f"/models/{model['id']}/versions", {"metrics": {bad: 1.0}}, "body.metrics"),
        ("POST", f"/models/{model['id']}/versions", {"metadata": {"a": {"b": [bad]}}}, "a.b[0]"),
        ("POST", f"/models/{model['id']}/versions", {"metadata": {"a": {bad: 1}}}, "body.metadata"),
        ("PATCH", f"/models/versions/{version['id']}", {"tags": {"k": bad}}, "body.tags"),
        ("PATCH", f"/models/versions/{version['id']}", {"description": bad}, "body.description"),
        (
            "POST",
            f"/models/versions/{version['id']}/transition",
            {"stage": "staging", "comment": bad},
            "body.comment",
        ),
    ]
    for method, path, body, field in writes:
        # JSON's escapes (`\\u0000`, `\\ud800`), as any client may send them
        r = await client.request(method, path, content=json.dumps(body), headers=JSON)
        refused(r, field)
    if bad == NUL:  # a URL is UTF-8 once percent-decoded: no surrogate gets through
        for path, params, field in [
            ("/models", {"name": bad}, "query.name"),
            ("/models", {"tag": bad}, "query.tag"),
            ("/models", {"tag": f"k:{bad}"}, "query.tag"),
            (f"/models/{model['id']}/versions/{quote(bad)}", {}, "path.version"),
        ]:
            refused(await client.get(path, params=params), field)
    r = await client.get(f"/models/{model['id']}")
    assert (r.json()["name"], r.json()["versions_total"]) == (model["name"], 1)


async def test_an_integer_past_a_bigint_is_refused(client, model):
    version = await new_version(client, model["id"])
    for path in ("/models", "/models/summary", f"/models/versions/{version['id']}/transitions"):
        for offset in (2**63, 10**30):
            refused(await client.get(path, params={"offset": offset}), "query.offset")
        assert (await client.get(path, params={"offset": 2**63 - 1})).status_code == 200
    for seq in (2**63, -(2**63) - 1):
        cursor = base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")
        problem(
            await client.get(f"/models/{model['id']}/versions", params={"cursor": cursor}),
            422,
            "invalid-cursor",
        )


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_a_metric_or_metadata_that_is_not_a_finite_number_is_refused(client, model, number):
    versions = f"/models/{model['id']}/versions"
    r = await client.post(versions, content=f'{{"metrics": {{"auc": {number}}}}}', headers=JSON)
    refused(r, "body.metrics.auc")
    r = await client.post(versions, content=f'{{"metadata": {{"lr": [{number}]}}}}', headers=JSON)
    refused(r, "lr[0]")
    assert (await client.get(versions)).json()["total"] == 0


async def test_0010_repairs_documents_left_null_and_keeps_null_out(scratch: ScratchDatabase):
    await scratch.upgrade("0009")
    model_id, version_id = uuid.uuid4(), uuid.uuid4()
    await scratch.execute(
        "INSERT INTO registry.registered_models (id, project_id, name, tags, created_by)"
        " VALUES ($1, $2, 'm', 'null'::jsonb, 'a')",
        model_id,
        uuid.uuid4(),
    )
    await scratch.execute(
        "INSERT INTO registry.model_versions (id, model_id, version, stage, tags, metrics,"
        " metadata, created_by)"
        " VALUES ($1, $2, '1', 'none', 'null'::jsonb, 'null'::jsonb, 'null'::jsonb, 'a')",
        version_id,
        model_id,
    )

    await scratch.upgrade("0010")

    [model] = await scratch.fetch("SELECT tags::text FROM registry.registered_models")
    [version] = await scratch.fetch(
        "SELECT tags::text, metrics::text, metadata::text FROM registry.model_versions"
    )
    assert (model["tags"], *version.values()) == ("[]", "[]", "{}", "{}")
    for table, column in [
        ("registered_models", "tags"),
        ("model_versions", "tags"),
        ("model_versions", "metrics"),
        ("model_versions", "metadata"),
    ]:
        with pytest.raises(asyncpg.CheckViolationError):
            await scratch.execute(f"UPDATE registry.{table} SET {column} = 'null'::jsonb")
    with pytest.raises(asyncpg.CheckViolationError):
        await scratch.execute("UPDATE registry.model_versions SET metadata = '[]'::jsonb")
    await scratch.downgrade("0009")  # and back


def test_every_operation_documents_the_problems_it_answers_with(registry_app):
    paths = {
        p: item
        for p, item in registry_app.openapi()["paths"].items()
        if p.startswith("/api/v1/registry/")
    }
    operations = {(method, path): op for path, item in paths.items() for method, op in item.items()}
    assert len(operations) == 26  # 14, 11 of the promotion policy, GET a version by id
    for (method, path), op in operations.items():
        problems = {
            status: reply
            for status, reply in op["responses"].items()
            if status.startswith(("4", "5"))
        }
        assert "422" in problems, (method, path)
        if method != "get":
            assert "401" in problems, (method, path)
        for status, reply in problems.items():
            assert list(reply["content"]) == ["application/problem+json"], (method, path)
            assert reply["content"]["application/problem+json"]["schema"]["required"] == [
                "type",
                "title",
                "status",
                "detail",
            ]
            assert "`" in reply["description"], (method, path, status)  # names its types
    transition = operations[("post", "/api/v1/registry/models/versions/{version_id}/transition")]
    assert "`stage-unchanged`" in transition["responses"]["409"]["description"]
    assert "`version-not-found`" in transition["responses"]["404"]["description"]
    for rule in ("staging-required", "metric-gate-not-met", "promotion-pending"):
        assert f"`{rule}`" in transition["responses"]["409"]["description"]
    assert "`author-may-not-approve`" in transition["responses"]["403"]["description"]
    assert "202" in transition["responses"]
    listing = operations[("get", "/api/v1/registry/models")]
    assert "`invalid-tag-filter`" in listing["responses"]["422"]["description"]


async def test_a_string_longer_than_its_column_or_a_deep_document_is_not_a_500(client, model):
    versions = f"/models/{model['id']}/versions"
    refused(await client.post(versions, json={"run_id": "r" * 256}), "body.run_id")
    replies = {}
    for depth, status in ((64, 201), (65, 422), (900, 422)):  # 900: as deep as JSON parses
        deep = "[" * depth + "]" * depth
        replies[depth] = await client.post(
            versions, content=f'{{"metadata": {{"deep": {deep}}}}}', headers=JSON
        )
        assert replies[depth].status_code == status, replies[depth].text
    kept = replies[64].json()["version"]  # read back, alone and in its pages
    for read in (versions, f"/models/{model['id']}", f"{versions}/{kept}"):
        assert (await client.get(read)).status_code == 200, read
