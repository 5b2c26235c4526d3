"""Input Postgres cannot store or compare is refused with 422 naming the field, never a 500."""

import json
import uuid

import pytest

from tests.jobs.test_jobs import job_body

NUL = "a\u0000b"


def gpu_type(**fields) -> dict:
    return {"id": f"g-{uuid.uuid4().hex[:6]}", "label": "G", "env": "dev", **fields}


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"priority": 2**31}, ["body", "priority"]),
        ({"priority": -(2**31) - 1}, ["body", "priority"]),
        ({"id": NUL}, ["body", "id"]),
        ({"label": NUL}, ["body", "label"]),
        ({"node_label": NUL}, ["body", "node_label"]),
        ({"node_label": "x" * 256}, ["body", "node_label"]),
    ],
)
async def test_a_gpu_type_out_of_range_or_with_nul_is_refused(jobs_client, fields, loc):
    r = await jobs_client.post("/gpu-types", json=gpu_type(**fields))
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [loc]


async def test_the_largest_priority_is_kept_and_an_update_past_it_refused(jobs_client):
    r = await jobs_client.post("/gpu-types", json=gpu_type(priority=2**31 - 1))
    assert r.status_code == 201 and r.json()["priority"] == 2**31 - 1
    path = f"/gpu-types/dev/{r.json()['id']}"
    r = await jobs_client.patch(path, json={"priority": 2**31})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "priority"]]
    r = await jobs_client.patch(path, json={"label": NUL})
    assert [e["loc"] for e in r.json()["errors"]] == [["body", "label"]]


async def test_a_nul_in_a_gpu_type_path_is_refused(jobs_client):
    for method in ("PATCH", "DELETE"):
        r = await jobs_client.request(method, "/gpu-types/dev/a%00b", json={"label": "x"})
        assert r.status_code == 422, (method, r.text)
        assert [e["loc"] for e in r.json()["errors"]] == [["path", "gpu_type_id"]]


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"name": NUL}, ["body", "name"]),
        ({"command": ["python", NUL]}, ["body", "command", "1"]),
        ({"working_dir": NUL}, ["body", "working_dir"]),
        ({"python_env": "/" + NUL}, ["body", "python_env"]),
        ({"image": NUL}, ["body", "image"]),
        ({"parameters": {"lr": NUL}}, ["body", "parameters"]),
        ({"parameters": {NUL: 1}}, ["body", "parameters"]),
        ({"resources": {"gpu_type": NUL}}, ["body", "resources", "gpu_type"]),
    ],
)
async def test_a_job_with_a_nul_anywhere_is_refused(jobs_client, fields, loc):
    r = await jobs_client.post("/jobs", json=job_body(**fields))
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [loc]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_nan_and_infinity_in_parameters_are_refused(jobs_client, literal):
    body = json.dumps(job_body(parameters={"lr": {"steps": [1, "X"]}})).replace('"X"', literal)
    r = await jobs_client.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["loc"] == ["body", "parameters"] and "lr.steps[1]" in error["msg"]


async def test_an_offset_past_bigint_is_refused(jobs_client):
    r = await jobs_client.get("/jobs", params={"offset": 2**63})
    assert r.status_code == 422
    assert [e["loc"] for e in r.json()["errors"]] == [["query", "offset"]]
    r = await jobs_client.get("/jobs", params={"offset": 2**63 - 1})
    assert r.status_code == 200 and r.json()["items"] == []


def test_each_operation_lists_the_problems_it_answers_with(jobs_app):
    paths = jobs_app.openapi()["paths"]
    for path, operations in paths.items():
        if not path.startswith("/api/v1/"):
            continue
        for method, operation in operations.items():
            assert {"401", "403", "422"} <= set(operation["responses"]), (method, path)
    assert "`job-rejected`" in paths["/api/v1/jobs"]["post"]["responses"]["422"]["description"]
    cancel = paths["/api/v1/jobs/{job_id}/cancel"]["post"]["responses"]
    assert "`job-already-finished`" in cancel["409"]["description"]
    assert "`job-not-found`" in cancel["404"]["description"]
    problem = cancel["409"]["content"]["application/problem+json"]["schema"]
    assert {"type", "title", "status"} <= set(problem["properties"])


async def test_a_null_in_a_gpu_type_patch_never_stores_null_and_the_list_still_answers(
    jobs_client,
):
    created = (await jobs_client.post("/gpu-types", json=gpu_type(priority=3))).json()
    path = f"/gpu-types/dev/{created['id']}"
    r = await jobs_client.patch(path, json={"label": None})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    r = await jobs_client.patch(path, json={"enabled": None, "priority": None})
    assert r.status_code == 200, r.text
    assert (r.json()["label"], r.json()["enabled"], r.json()["priority"]) == (
        created["label"],
        created["enabled"],
        3,
    )
    r = await jobs_client.patch(path, json={"node_label": None})
    assert r.status_code == 200 and r.json()["node_label"] is None
    listed = await jobs_client.get("/gpu-types", params={"env": "dev"})
    assert listed.status_code == 200
    assert created["id"] in [g["id"] for g in listed.json()["items"]]


async def test_a_nul_in_the_run_id_looked_up_is_refused(jobs_client):
    """The gateway's lineage of a run looks its job up so; a NUL was a 500 here."""
    r = await jobs_client.get("/jobs", params={"tracking_run_id": NUL})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["errors"]] == [["query", "tracking_run_id"]]
