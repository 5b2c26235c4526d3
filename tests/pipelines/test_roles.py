"""Roles by project inside the pipelines service: viewers read, editors create, start, cancel
and retry, approvers approve; lists show only what the caller may see."""

import uuid

from shared.auth import Role
from tests.credentials import credential_headers
from tests.pipelines.conftest import PROJECT
from tests.pipelines.definitions import release_pipeline, stage
from tests.pipelines.test_service import ENV, create, stages, wait_run


def member(role: Role, project: str = PROJECT) -> dict:
    return credential_headers(
        f"{role.value}@example.com", role=None, project_roles={uuid.UUID(project): role}
    )


async def test_viewers_read_editors_run_and_approvers_approve(pipelines_client):
    viewer, editor, approver = member(Role.VIEWER), member(Role.EDITOR), member(Role.APPROVER)
    body = {
        "name": f"roles-{uuid.uuid4().hex[:6]}",
        "project_id": PROJECT,
        "definition": {"stages": [stage("approve", "approve")]},
    }
    refused = await pipelines_client.post("/pipelines", json=body, headers=viewer)
    assert refused.status_code == 403 and refused.json()["required_role"] == "editor"
    created = await pipelines_client.post("/pipelines", json=body, headers=editor)
    assert created.status_code == 201, created.text
    pipeline = created.json()
    base = f"/pipelines/{pipeline['id']}"

    assert (await pipelines_client.get(base, headers=viewer)).status_code == 200
    assert (
        await pipelines_client.post(f"{base}/runs", json={"env": ENV}, headers=viewer)
    ).status_code == 403
    run = (await pipelines_client.post(f"{base}/runs", json={"env": ENV}, headers=editor)).json()
    await wait_run(pipelines_client, run, lambda r: stages(r)["approve"] == "running")
    assert (
        await pipelines_client.get(f"{base}/runs/{run['id']}", headers=viewer)
    ).status_code == 200
    approve = f"{base}/runs/{run['id']}/stages/approve/approve"
    by_editor = await pipelines_client.post(approve, json={}, headers=editor)
    assert by_editor.status_code == 403 and by_editor.json()["required_role"] == "approver"
    by_approver = await pipelines_client.post(approve, json={}, headers=approver)
    assert by_approver.status_code == 200 and by_approver.json()["status"] == "succeeded"
    assert by_approver.json()["stages"][0]["outputs"]["approved_by"] == "approver@example.com"

    second = (await pipelines_client.post(f"{base}/runs", json={"env": ENV}, headers=editor)).json()
    cancel = f"{base}/runs/{second['id']}/cancel"
    assert (await pipelines_client.post(cancel, headers=viewer)).status_code == 403
    assert (await pipelines_client.post(cancel, headers=editor)).status_code == 200


async def test_lists_and_reads_are_scoped_to_the_callers_projects(pipelines_client):
    pipeline = await create(pipelines_client, {"stages": [stage("train", "train")]})
    stranger = member(Role.ADMIN, project=str(uuid.uuid4()))
    listed = (await pipelines_client.get("/pipelines", headers=stranger)).json()
    assert pipeline["id"] not in [p["id"] for p in listed["items"]]
    asked = await pipelines_client.get(
        "/pipelines", params={"project_id": PROJECT}, headers=stranger
    )
    assert asked.json() == {"items": [], "total": 0}
    assert (
        await pipelines_client.get(f"/pipelines/{pipeline['id']}", headers=stranger)
    ).status_code == 403
    mine = (await pipelines_client.get("/pipelines", headers=member(Role.VIEWER))).json()
    assert pipeline["id"] in [p["id"] for p in mine["items"]]


async def test_a_promotion_to_production_with_no_approve_stage_needs_an_approver(pipelines_client):
    definition = release_pipeline()
    definition["stages"] = [s for s in definition["stages"] if s["kind"] != "approve"]
    definition["stages"][-1]["depends_on"] = ["staging"]
    definition["stages"][-1]["parameters"]["comment"] = "straight through"
    pipeline = await create(pipelines_client, definition)
    runs = f"/pipelines/{pipeline['id']}/runs"
    refused = await pipelines_client.post(runs, json={"env": ENV}, headers=member(Role.EDITOR))
    assert refused.status_code == 403, refused.text
    assert refused.json()["type"].endswith("/pipeline-run-needs-an-approver")
    assert "production" in refused.json()["detail"]
    started = await pipelines_client.post(runs, json={"env": ENV}, headers=member(Role.APPROVER))
    assert started.status_code == 201, started.text
    # With its approve stage, an editor starts the same release.
    gated = await create(pipelines_client, release_pipeline())
    assert (
        await pipelines_client.post(
            f"/pipelines/{gated['id']}/runs", json={"env": ENV}, headers=member(Role.EDITOR)
        )
    ).status_code == 201
