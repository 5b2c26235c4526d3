"""The registry's HTTP API on a real Postgres: what a caller sends and gets back."""

import asyncio
import uuid
from datetime import datetime

import pytest

from services.registry.schemas import (
    ModelDetail,
    ModelOut,
    TransitionPage,
    TransitionResult,
    VersionOut,
    VersionPage,
)
from shared.errors import PROBLEM_BASE
from tests.credentials import credential_headers, known_project
from tests.registry.conftest import promote

PROBLEM = "application/problem+json"


def problem(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == PROBLEM_BASE + kind
    assert body["status"] == status
    return body


def at(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


async def new_version(client, model_id, **body) -> dict:
    r = await client.post(f"/models/{model_id}/versions", json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def test_register_model_records_actor_and_location(client, project):
    r = await client.post(
        "/models",
        json={"name": "fraud", "project_id": project, "description": "d", "tags": {"team": "risk"}},
    )
    assert r.status_code == 201
    body = r.json()
    assert body["created_by"] == "alice@example.com"
    assert body["tags"] == {"team": "risk"}
    assert r.headers["location"].endswith(f"/models/{body['id']}")


async def test_duplicate_name_in_a_project_is_a_conflict_but_other_projects_may_reuse_it(
    client, project, registry_app
):
    assert (
        await client.post("/models", json={"name": "m", "project_id": project})
    ).status_code == 201
    problem(
        await client.post("/models", json={"name": "m", "project_id": project}),
        409,
        "duplicate-model-name",
    )
    other = known_project(registry_app)
    assert (
        await client.post("/models", json={"name": "m", "project_id": other})
    ).status_code == 201


async def test_bad_input_is_422_problem_json(client, model):
    problem(
        await client.post("/models", json={"name": "", "project_id": str(uuid.uuid4())}),
        422,
        "invalid-input",
    )
    problem(
        await client.post("/models", json={"name": "x", "project_id": "nope"}), 422, "invalid-input"
    )
    problem(
        await client.post(f"/models/{model['id']}/versions", json={"version": ""}),
        422,
        "invalid-input",
    )
    problem(
        await client.post(f"/models/{model['id']}/versions", json={"version": "   "}),
        422,
        "invalid-input",
    )
    v = await new_version(client, model["id"])
    body = problem(
        await client.post(f"/models/versions/{v['id']}/transition", json={"stage": "prod"}),
        422,
        "invalid-input",
    )
    assert "stage" in body["detail"]
    problem(
        await client.get(f"/models/stages/golden/latest?model_id={model['id']}"),
        422,
        "invalid-input",
    )


async def test_unknown_ids_are_404(client):
    missing = uuid.uuid4()
    problem(await client.get(f"/models/{missing}"), 404, "model-not-found")
    problem(
        await client.patch(f"/models/{missing}", json={"description": "x"}), 404, "model-not-found"
    )
    problem(await client.delete(f"/models/{missing}"), 404, "model-not-found")
    problem(await client.post(f"/models/{missing}/versions", json={}), 404, "model-not-found")
    problem(await client.get(f"/models/{missing}/versions"), 404, "model-not-found")
    problem(
        await client.post(f"/models/versions/{missing}/transition", json={"stage": "staging"}),
        404,
        "version-not-found",
    )
    problem(await client.get(f"/models/versions/{missing}/transitions"), 404, "version-not-found")
    problem(await client.patch(f"/models/versions/{missing}", json={}), 404, "version-not-found")
    problem(await client.delete(f"/models/versions/{missing}"), 404, "version-not-found")


async def test_writes_without_a_credential_are_refused(client):
    r = await client.post(
        "/models",
        json={"name": "anon", "project_id": str(uuid.uuid4())},
        headers={"X-Modelplane-Credential": "", "X-Modelplane-Actor": "mallory"},
    )
    problem(r, 401, "credential-required")


async def test_versions_number_themselves_and_labels_are_unique_per_model(client, model):
    first = await new_version(client, model["id"], run_id="run-1", metrics={"acc": 0.9})
    assert (first["version"], first["stage"], first["run_id"]) == ("1", "none", "run-1")
    assert first["metrics"] == {"acc": 0.9}
    await new_version(client, model["id"], version="2")  # takes the next number
    third = await new_version(client, model["id"])
    assert third["version"] == "3"
    await new_version(client, model["id"], version="5")  # takes number 4
    # Number 5 is someone's label: it is skipped, and numbering goes on from the one used.
    assert [(await new_version(client, model["id"]))["version"] for _ in range(2)] == ["6", "7"]
    problem(
        await client.post(f"/models/{model['id']}/versions", json={"version": "2"}),
        409,
        "duplicate-version",
    )
    r = await client.get(f"/models/{model['id']}/versions/2")
    assert r.status_code == 200 and r.json()["version"] == "2"
    problem(await client.get(f"/models/{model['id']}/versions/9"), 404, "version-not-found")


async def test_a_version_is_read_by_its_id_alone(client, model):
    made = await new_version(client, model["id"], run_id="run-by-id")
    r = await client.get(f"/models/versions/{made['id']}")
    assert r.status_code == 200
    assert (r.json()["model_id"], r.json()["run_id"]) == (model["id"], "run-by-id")
    problem(await client.get(f"/models/versions/{uuid.uuid4()}"), 404, "version-not-found")


async def test_get_model_returns_its_versions(client, model):
    for _ in range(3):
        await new_version(client, model["id"])
    body = (await client.get(f"/models/{model['id']}")).json()
    assert body["name"] == model["name"]
    assert [v["version"] for v in body["versions"]] == ["3", "2", "1"]
    assert body["versions_total"] == 3


@pytest.mark.filterwarnings("error")  # a value the serializer did not expect fails the reply
async def test_replies_send_what_their_documented_shape_validates_and_writes_back(
    client, model, project
):
    """Reads and writes reply with rows without building the models (`rows_reply`): each body,
    validated by the schema the route documents and written again, comes back byte for byte."""
    registered = await client.post(
        "/models",
        json={
            "name": f"m-{uuid.uuid4().hex[:8]}",
            "project_id": project,
            "description": "d",
            "tags": {"team": "risk"},
        },
    )
    created = await client.post(
        f"/models/{model['id']}/versions",
        json={
            "description": "d",
            "run_id": "r1",
            "artifact_uri": "s3://b/m",
            "artifact_version_id": str(uuid.uuid4()),
            "metrics": {"auc": 1.0, "f1": 0.25},
            "tags": {"team": "risk"},
            "metadata": {"seed": 2**70, "layers": [64, 32]},
        },
    )
    full = created.json()
    staged, promoted = await promote(client, full, "staging"), await promote(client, full)
    await new_version(client, model["id"])
    reads = {
        f"/models/{model['id']}": ModelDetail,
        f"/models/{model['id']}/versions": VersionPage,
        f"/models/{model['id']}/versions?limit=1": VersionPage,
        f"/models/{model['id']}/versions/{full['version']}": VersionOut,
        f"/models/stages/production/latest?model_id={model['id']}": VersionOut,
        f"/models/versions/{full['id']}/transitions": TransitionPage,
    }
    replies = {path: await client.get(path) for path in reads}
    checks = [
        (registered, 201, ModelOut),
        (created, 201, VersionOut),
        (staged, 200, TransitionResult),
        (promoted, 200, TransitionResult),
        *((replies[path], 200, shape) for path, shape in reads.items()),
    ]
    for r, status, shape in checks:
        assert r.status_code == status, r.text
        written_back = shape.model_validate_json(r.content, by_name=True).model_dump_json()
        assert r.content == written_back.encode(), r.request.url
    got = replies[f"/models/{model['id']}/versions/{full['version']}"].json()
    assert {k: got[k] for k in ("stage", "metrics", "tags", "metadata")} == {
        "stage": "production",
        "metrics": {"auc": 1.0, "f1": 0.25},
        "tags": {"team": "risk"},
        "metadata": {"seed": 2**70, "layers": [64, 32]},
    }
    assert got["approved_at"] is not None


async def test_list_versions_filters_by_stage_and_pages_by_cursor(client, model):
    versions = [await new_version(client, model["id"]) for _ in range(5)]
    for v in versions[:2]:
        r = await client.post(f"/models/versions/{v['id']}/transition", json={"stage": "staging"})
        assert r.status_code == 200
    staged = (await client.get(f"/models/{model['id']}/versions?stage=staging")).json()
    assert staged["total"] == 2 and {v["version"] for v in staged["items"]} == {"1", "2"}

    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get(f"/models/{model['id']}/versions", params=params)).json()
        assert page["total"] == 5
        seen += [v["version"] for v in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == ["5", "4", "3", "2", "1"]
    problem(await client.get(f"/models/{model['id']}/versions?cursor=%%%"), 422, "invalid-cursor")
    # A page past the last version, and a stage no version is in: empty, the count still told.
    whole = (await client.get(f"/models/{model['id']}/versions", params={"limit": 5})).json()
    past = {"limit": 5, "cursor": whole["next_cursor"]}  # a full page: there might be more
    assert (await client.get(f"/models/{model['id']}/versions", params=past)).json() == {
        "items": [],
        "total": 5,
        "next_cursor": None,
    }
    assert (await client.get(f"/models/{model['id']}/versions?stage=production")).json() == {
        "items": [],
        "total": 0,
        "next_cursor": None,
    }


async def test_a_model_without_versions_lists_none(client, model):
    assert (await client.get(f"/models/{model['id']}/versions")).json() == {
        "items": [],
        "total": 0,
        "next_cursor": None,
    }
    body = (await client.get(f"/models/{model['id']}")).json()
    assert (body["versions"], body["versions_total"]) == ([], 0)


async def test_list_totals_follow_every_create_transition_and_delete(client, model, runtime):
    from sqlalchemy import func, select

    from services.registry.models import ModelVersion

    model_id = uuid.UUID(model["id"])

    async def totals() -> dict[str, int]:
        listed = {
            stage: (await client.get(f"/models/{model_id}/versions?stage={stage}&limit=1")).json()[
                "total"
            ]
            for stage in ("none", "staging", "production", "archived")
        }
        listed["all"] = (await client.get(f"/models/{model_id}/versions?limit=1")).json()["total"]
        async with runtime.sessionmaker() as s:  # the truth, counted row by row
            rows = dict(
                (
                    await s.execute(
                        select(ModelVersion.stage, func.count())
                        .where(ModelVersion.model_id == model_id)
                        .group_by(ModelVersion.stage)
                    )
                ).all()
            )
        truth = {
            stage: rows.get(stage, 0) for stage in ("none", "staging", "production", "archived")
        }
        assert listed == truth | {"all": sum(truth.values())}
        return listed

    v = [await new_version(client, model["id"]) for _ in range(4)]
    assert (await totals())["none"] == 4
    await client.post(f"/models/versions/{v[0]['id']}/transition", json={"stage": "production"})
    await client.post(f"/models/versions/{v[1]['id']}/transition", json={"stage": "staging"})
    # Promoting another archives the first: two stage changes in one transaction.
    await client.post(f"/models/versions/{v[2]['id']}/transition", json={"stage": "production"})
    assert await totals() == {"none": 1, "staging": 1, "production": 1, "archived": 1, "all": 4}
    assert (await client.delete(f"/models/versions/{v[0]['id']}")).status_code == 204
    assert await totals() == {"none": 1, "staging": 1, "production": 1, "archived": 0, "all": 3}
    await client.post(f"/models/versions/{v[2]['id']}/transition", json={"stage": "archived"})
    assert await totals() == {"none": 1, "staging": 1, "production": 0, "archived": 1, "all": 3}
    assert (await client.delete(f"/models/{model_id}")).status_code == 204


async def test_search_models_by_name_project_and_tag(client, project):
    for name, tags in [
        ("churn-xgb", {"team": "growth"}),
        ("churn-lr", {"team": "risk"}),
        ("vision", {"team": "growth", "gpu": "yes"}),
    ]:
        r = await client.post("/models", json={"name": name, "project_id": project, "tags": tags})
        assert r.status_code == 201

    async def names(**params):
        r = await client.get("/models", params={"project_id": project, **params})
        assert r.status_code == 200, r.text
        return [m["name"] for m in r.json()["items"]], r.json()["total"]

    assert await names() == (["churn-lr", "churn-xgb", "vision"], 3)
    assert await names(name="CHURN") == (["churn-lr", "churn-xgb"], 2)
    assert await names(tag="team:growth") == (["churn-xgb", "vision"], 2)
    assert await names(tag=["team:growth", "gpu"]) == (["vision"], 1)
    assert await names(limit=1, offset=1) == (["churn-xgb"], 3)


async def test_update_and_rename_model(client, project):
    a = (await client.post("/models", json={"name": "a", "project_id": project})).json()
    await client.post("/models", json={"name": "b", "project_id": project})
    r = await client.patch(f"/models/{a['id']}", json={"description": "new", "tags": {"k": "v"}})
    assert r.status_code == 200
    assert (r.json()["description"], r.json()["tags"]) == ("new", {"k": "v"})
    assert r.json()["updated_at"] > a["updated_at"]
    problem(
        await client.patch(f"/models/{a['id']}", json={"name": "b"}), 409, "duplicate-model-name"
    )
    r = await client.patch(f"/models/{a['id']}", json={"name": "c"})
    assert r.json()["name"] == "c"


async def test_a_model_is_updated_when_a_version_is_created_moved_or_deleted(client, model):
    """As MLflow's `last_updated_timestamp`: a version's own PATCH updates the version only."""

    async def updated_at() -> datetime:
        return at((await client.get(f"/models/{model['id']}")).json()["updated_at"])

    v1 = await new_version(client, model["id"])
    created = await updated_at()
    assert created > at(model["updated_at"])
    assert created == at(v1["created_at"])

    r = await client.post(f"/models/versions/{v1['id']}/transition", json={"stage": "staging"})
    moved = await updated_at()
    assert moved > created
    assert moved == at(r.json()["version"]["updated_at"])

    r = await client.patch(f"/models/versions/{v1['id']}", json={"description": "d"})
    assert at(r.json()["updated_at"]) > moved
    assert await updated_at() == moved

    v2 = await new_version(client, model["id"])
    assert (await client.delete(f"/models/versions/{v2['id']}")).status_code == 204
    assert await updated_at() > at(v2["created_at"])


async def test_update_version(client, model):
    v = await new_version(client, model["id"])
    r = await client.patch(
        f"/models/versions/{v['id']}", json={"description": "better", "metadata": {"f1": 0.8}}
    )
    assert r.status_code == 200
    assert (r.json()["description"], r.json()["metadata"]) == ("better", {"f1": 0.8})
    problem(
        await client.patch(f"/models/versions/{v['id']}", json={"stage": "production"}),
        422,
        "invalid-input",
    )


async def test_metadata_numbers_come_back_exactly_whatever_their_size(client, model):
    metadata = {"seed": 2**70, "tiny": -(2**65), "ratio": 0.1, "id": "9" * 30}
    v = await new_version(client, model["id"], metadata=metadata)
    assert v["metadata"] == metadata
    got = await client.get(f"/models/{model['id']}/versions/{v['version']}")
    assert got.json()["metadata"] == metadata
    patched = {**metadata, "seed": 3**50}
    r = await client.patch(f"/models/versions/{v['id']}", json={"metadata": patched})
    assert r.json()["metadata"] == patched
    listed = (await client.get(f"/models/{model['id']}/versions")).json()["items"]
    assert [item["metadata"] for item in listed if item["id"] == v["id"]] == [patched]


async def test_transition_to_the_same_stage_is_a_conflict(client, model):
    v = await new_version(client, model["id"])
    problem(
        await client.post(f"/models/versions/{v['id']}/transition", json={"stage": "none"}),
        409,
        "stage-unchanged",
    )


async def test_staging_production_archive_with_approval_and_audit_trail(client, model):
    """The design's second and third use cases: promote, replace, and read the history."""
    v1 = await new_version(client, model["id"])
    v2 = await new_version(client, model["id"])

    async def transition(v, stage, comment=None):
        r = await client.post(
            f"/models/versions/{v['id']}/transition", json={"stage": stage, "comment": comment}
        )
        assert r.status_code == 200, r.text
        return r.json()

    await transition(v1, "staging", "candidate")
    done = await transition(v1, "production", "approved by review")
    assert done["version"]["approved_by"] == "alice@example.com"
    assert done["version"]["approved_at"] is not None
    latest = await client.get(f"/models/stages/production/latest?model_id={model['id']}")
    assert latest.json()["id"] == v1["id"]

    done = await transition(v2, "production", "v2 is better")
    assert [(t["version_id"], t["from_stage"], t["to_stage"]) for t in done["transitions"]] == [
        (v1["id"], "production", "archived"),
        (v2["id"], "none", "production"),
    ]
    latest = await client.get(f"/models/stages/production/latest?model_id={model['id']}")
    assert latest.json()["id"] == v2["id"]
    archived = (await client.get(f"/models/{model['id']}/versions/1")).json()
    assert archived["stage"] == "archived"

    history = (await client.get(f"/models/versions/{v1['id']}/transitions")).json()
    assert history["total"] == 3
    assert [
        (t["from_stage"], t["to_stage"], t["comment"], t["transitioned_by"])
        for t in history["items"]
    ] == [
        ("production", "archived", "superseded by version 2", "alice@example.com"),
        ("staging", "production", "approved by review", "alice@example.com"),
        ("none", "staging", "candidate", "alice@example.com"),
    ]
    problem(
        await client.get(f"/models/stages/staging/latest?model_id={model['id']}"),
        404,
        "version-not-found",
    )


async def test_production_version_cannot_be_deleted_but_others_can(client, model):
    v1 = await new_version(client, model["id"])
    v2 = await new_version(client, model["id"])
    await client.post(f"/models/versions/{v1['id']}/transition", json={"stage": "production"})
    problem(await client.delete(f"/models/versions/{v1['id']}"), 409, "version-in-production")
    assert (await client.delete(f"/models/versions/{v2['id']}")).status_code == 204
    problem(await client.get(f"/models/{model['id']}/versions/2"), 404, "version-not-found")


async def test_deleting_a_model_deletes_its_versions_and_history(client, model, runtime):
    from sqlalchemy import func, select

    from services.registry.models import ModelVersion, ModelVersionTransition

    v = await new_version(client, model["id"])
    await client.post(f"/models/versions/{v['id']}/transition", json={"stage": "staging"})
    assert (await client.delete(f"/models/{model['id']}")).status_code == 204
    problem(await client.get(f"/models/{model['id']}"), 404, "model-not-found")
    problem(await client.get(f"/models/versions/{v['id']}/transitions"), 404, "version-not-found")
    async with runtime.sessionmaker() as s:
        assert (
            await s.scalar(
                select(func.count()).where(ModelVersion.model_id == uuid.UUID(model["id"]))
            )
            == 0
        )
        assert (
            await s.scalar(
                select(func.count()).where(
                    ModelVersionTransition.model_id == uuid.UUID(model["id"])
                )
            )
            == 0
        )


async def test_summary_counts_versions_by_stage(client, project):
    m = (await client.post("/models", json={"name": "s", "project_id": project})).json()
    vs = [await new_version(client, m["id"]) for _ in range(3)]
    await client.post(f"/models/versions/{vs[0]['id']}/transition", json={"stage": "production"})
    await client.post(f"/models/versions/{vs[1]['id']}/transition", json={"stage": "staging"})
    await client.post("/models", json={"name": "empty", "project_id": project})
    body = (await client.get(f"/models/summary?project_id={project}")).json()
    assert body["total"] == 2 and body["versions"] == 3
    assert body["by_stage"] == {"none": 1, "staging": 1, "production": 1, "archived": 0}
    empty, s = body["items"]
    assert (empty["name"], empty["versions"], empty["latest_version"]) == ("empty", 0, None)
    assert (s["versions"], s["latest_version"], s["production_version"]) == (3, "3", "1")


async def test_summary_follows_promotions_deletions_and_pages(client, project, registry_app):
    # Read from the counts the writes keep and the production version the model names: each
    # write that moves them must show.
    a = (await client.post("/models", json={"name": "a", "project_id": project})).json()
    b = (await client.post("/models", json={"name": "b", "project_id": project})).json()
    other_project = known_project(registry_app)
    await client.post("/models", json={"name": "elsewhere", "project_id": other_project})
    va = [await new_version(client, a["id"]) for _ in range(4)]
    vb = [await new_version(client, b["id"], version="v1")]
    for v in (va[0], va[1], vb[0]):  # va[1] archives va[0]
        assert (await promote(client, v)).status_code == 200
    assert (await promote(client, va[2], "staging")).status_code == 200
    assert (await client.delete(f"/models/versions/{va[3]['id']}")).status_code == 204

    body = (await client.get(f"/models/summary?project_id={project}")).json()
    assert (body["total"], body["versions"]) == (2, 4)
    assert body["by_stage"] == {"none": 0, "staging": 1, "production": 2, "archived": 1}
    assert [
        (m["name"], m["versions"], m["latest_version"], m["production_version"])
        for m in body["items"]
    ] == [("a", 3, "3", "2"), ("b", 1, "v1", "v1")]
    assert body["items"][0]["by_stage"] == {"none": 0, "staging": 1, "production": 1, "archived": 1}

    page = (await client.get(f"/models/summary?project_id={project}&limit=1&offset=1")).json()
    assert [item["name"] for item in page["items"]] == ["b"]
    assert (page["total"], page["versions"]) == (2, 4)
    everything = (await client.get("/models/summary?limit=1")).json()
    assert everything["total"] >= 3 and everything["versions"] >= 4


async def test_only_a_move_to_production_records_an_approval(client, model):
    v = await new_version(client, model["id"])
    other = credential_headers("bob@example.com")

    async def move(stage: str, headers: dict | None = None) -> dict:
        r = await client.post(
            f"/models/versions/{v['id']}/transition", json={"stage": stage}, headers=headers
        )
        assert r.status_code == 200, r.text
        return r.json()["version"]

    for stage in ("staging", "archived", "none"):
        moved = await move(stage)
        assert (moved["approved_by"], moved["approved_at"]) == (None, None), stage
    approved = await move("production")
    assert approved["approved_by"] == "alice@example.com"
    assert approved["approved_at"] == approved["updated_at"]
    # Moved on by someone else, it keeps the approval that put it in production.
    for stage in ("archived", "staging"):
        moved = await move(stage, other)
        assert (moved["approved_by"], moved["approved_at"]) == (
            approved["approved_by"],
            approved["approved_at"],
        ), stage
    got = (await client.get(f"/models/{model['id']}/versions/{v['version']}")).json()
    assert got["approved_by"] == "alice@example.com"


async def test_a_rename_racing_another_to_the_same_name_is_a_conflict(client, runtime, project):
    a, b = [
        (await client.post("/models", json={"name": n, "project_id": project})).json()
        for n in ("a", "b")
    ]
    async with runtime.connection() as other:
        # Another rename to "c", not yet committed: the check before b's does not see it.
        transaction = other.transaction()
        await transaction.start()
        await other.execute(
            "UPDATE registry.registered_models SET name = 'c' WHERE id = $1", uuid.UUID(a["id"])
        )
        racing = asyncio.create_task(client.patch(f"/models/{b['id']}", json={"name": "c"}))
        await asyncio.sleep(0.5)  # b's UPDATE waits on a's entry in the unique index
        assert not racing.done()
        await transaction.commit()
        problem(await racing, 409, "duplicate-model-name")
    r = await client.get("/models", params={"project_id": project})
    assert sorted(m["name"] for m in r.json()["items"]) == ["b", "c"]
