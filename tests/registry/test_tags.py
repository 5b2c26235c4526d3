"""Tags in the registry design's list form (`["risk", "credit"]`) and in MLflow's key and value
form (`{"team": "risk"}`): each kept and returned as sent, both found by `tag=`, both on the
events."""

import uuid

import pytest

from shared.events.registry import ModelRegistered, ModelVersionCreated
from tests.bus import wait_for_events
from tests.credentials import known_project
from tests.registry.test_api import new_version, problem


async def new_model(client, project: str, **body) -> dict:
    r = await client.post(
        "/models", json={"name": f"m-{uuid.uuid4().hex[:8]}", "project_id": project, **body}
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_tags_come_back_in_the_form_sent_and_default_to_an_empty_list(
    client, model, registry_app
):
    project = known_project(registry_app)
    listed = await new_model(client, project, tags=["risk", "credit"])
    keyed = await new_model(client, project, tags={"team": "risk"})
    bare = await new_model(client, project)
    assert (listed["tags"], keyed["tags"], bare["tags"]) == (
        ["risk", "credit"],
        {"team": "risk"},
        [],
    )
    for m in (listed, keyed, bare):
        assert (await client.get(f"/models/{m['id']}")).json()["tags"] == m["tags"]

    # An update replaces them whole, in the form it sends.
    r = await client.patch(f"/models/{listed['id']}", json={"tags": {"team": "growth"}})
    assert r.status_code == 200 and r.json()["tags"] == {"team": "growth"}
    r = await client.patch(f"/models/{keyed['id']}", json={"tags": ["churn"]})
    assert r.status_code == 200 and r.json()["tags"] == ["churn"]

    v = await new_version(client, model["id"], tags=["candidate", "xgb"])
    assert v["tags"] == ["candidate", "xgb"]
    assert (await new_version(client, model["id"]))["tags"] == []
    r = await client.patch(f"/models/versions/{v['id']}", json={"tags": {"owner": "erin"}})
    assert r.status_code == 200 and r.json()["tags"] == {"owner": "erin"}
    got = (await client.get(f"/models/{model['id']}/versions/{v['version']}")).json()
    assert got["tags"] == {"owner": "erin"}
    page = (await client.get(f"/models/{model['id']}/versions")).json()
    assert [x["tags"] for x in page["items"]] == [[], {"owner": "erin"}]


async def test_a_tag_filter_finds_list_labels_and_object_keys(client, registry_app):
    project = known_project(registry_app)
    models = {
        "labels": await new_model(client, project, tags=["risk", "credit"]),
        "keyed": await new_model(client, project, tags={"risk": "high"}),
        "team": await new_model(client, project, tags={"team": "growth"}),
        "label-with-colon": await new_model(client, project, tags=["team:growth"]),
        "none": await new_model(client, project),
    }
    names = {m["id"]: name for name, m in models.items()}

    async def found(*tags: str) -> set[str]:
        r = await client.get("/models", params={"project_id": project, "tag": list(tags)})
        assert r.status_code == 200, r.text
        assert r.json()["total"] == len(r.json()["items"])
        return {names[m["id"]] for m in r.json()["items"]}

    assert await found("risk") == {"labels", "keyed"}
    assert await found("risk", "credit") == {"labels"}
    assert await found("risk:high") == {"keyed"}
    assert await found("risk:low") == set()
    assert await found("team:growth") == {"team", "label-with-colon"}
    assert await found("team") == {"team"}
    problem(await client.get("/models", params={"tag": ":x"}), 422, "invalid-tag-filter")


@pytest.mark.parametrize("tags", [5, "risk", ["risk", 1], [""], {"k": 1}, [["nested"]], None])
async def test_tags_of_another_shape_are_refused_naming_the_field(
    client, model, tags, registry_app
):
    project = known_project(registry_app)
    writes = [
        client.post("/models", json={"name": "x", "project_id": project, "tags": tags}),
        client.patch(f"/models/{model['id']}", json={"tags": tags}),
        client.post(f"/models/{model['id']}/versions", json={"tags": tags}),
    ]
    for write in writes:
        body = problem(await write, 422, "invalid-input")
        assert body["errors"][0]["loc"][:2] == ["body", "tags"], body
    r = await client.get("/models", params={"project_id": project})
    assert r.status_code == 200 and r.json()["total"] == 0


async def test_the_openapi_documents_both_forms(registry_app):
    schemas = registry_app.openapi()["components"]["schemas"]
    for name in (
        "ModelCreate",
        "ModelUpdate",
        "VersionCreate",
        "VersionUpdate",
        "ModelOut",
        "VersionOut",
    ):
        tags = schemas[name]["properties"]["tags"]
        forms = tags.get("oneOf") or tags.get("anyOf")
        assert {f["type"] for f in forms} == {"array", "object"}, name
        assert "form sent" in tags["description"], name


async def test_the_events_carry_tags_in_either_form(client, nc, registry_app):
    project = known_project(registry_app)
    listed = await new_model(client, project, tags=["risk", "credit"])
    keyed = await new_model(client, project, tags={"team": "risk"})
    v_listed = await new_version(client, listed["id"], tags=["candidate"])
    v_keyed = await new_version(client, keyed["id"], tags={"owner": "erin"})
    v_bare = await new_version(client, keyed["id"])

    async def data(aggregate: dict, contract):
        [event] = await wait_for_events(nc, "REGISTRY", aggregate["id"], count=1)
        assert event.type == contract.type()
        event.parse_data(contract)  # still the contract's shape
        return event.data

    # `tags` stays an object, as v1 always had it; a list goes in `tag_list`, added since.
    registered = await data(listed, ModelRegistered)
    assert (registered["tags"], registered["tag_list"]) == ({}, ["risk", "credit"])
    registered = await data(keyed, ModelRegistered)
    assert (registered["tags"], registered["tag_list"]) == ({"team": "risk"}, None)
    created = await data(v_listed, ModelVersionCreated)
    assert (created["tags"], created["tag_list"]) == ({}, ["candidate"])
    created = await data(v_keyed, ModelVersionCreated)
    assert (created["tags"], created["tag_list"]) == ({"owner": "erin"}, None)
    created = await data(v_bare, ModelVersionCreated)
    assert (created["tags"], created["tag_list"]) == ({}, [])
