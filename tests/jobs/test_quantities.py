"""A job's `cpu` and `memory` are Kubernetes quantities, numbers or strings, kept in one
canonical form and handed so to the cluster; a malformed one is refused naming the field."""

import json

import pytest

from tests.jobs.test_jobs import job_body

GOOD = [
    ("cpu", 1, "1"),
    ("cpu", 2.0, "2"),
    ("cpu", 0.5, "500m"),
    ("cpu", "0.5", "500m"),
    ("cpu", "500m", "500m"),
    ("cpu", "1500m", "1500m"),
    ("cpu", "2", "2"),
    ("cpu", "0.0001", "1m"),  # rounded up to a millicore, as Kubernetes does
    ("memory", "2Gi", "2Gi"),
    ("memory", 1073741824, "1Gi"),
    ("memory", "1073741824", "1Gi"),
    ("memory", "1.5Gi", "1536Mi"),
    ("memory", "512Mi", "512Mi"),
    ("memory", "1G", "1000000000"),
    ("memory", "1k", "1000"),
    ("memory", 1e9, "1000000000"),
]

BAD = [
    ("cpu", "lots"),
    ("cpu", -1),
    ("cpu", "-1"),
    ("cpu", 0),
    ("cpu", ""),
    ("cpu", True),
    ("cpu", [1]),
    ("cpu", "1 core"),
    ("cpu", "1e300"),
    ("cpu", "2Xi"),
    ("memory", "lots"),
    ("memory", -1),
    ("memory", "-2Gi"),
    ("memory", "0"),
    ("memory", "2GB"),
    ("memory", "inf"),
    ("memory", "NaN"),
    ("memory", "2\u0000Gi"),
    ("memory", {"value": 2}),
]


@pytest.mark.parametrize(("field", "given", "kept"), GOOD)
async def test_a_quantity_is_kept_canonical_and_sent_so_to_the_cluster(
    jobs_client, jobs_cluster, field, given, kept
):
    r = await jobs_client.post("/jobs", json=job_body(env="stg", resources={field: given}))
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["resources"][field] == kept
    assert (await jobs_client.get(f"/jobs/{job['id']}")).json()["resources"][field] == kept
    [created] = [
        request.body
        for request in jobs_cluster.received("POST", "/jobs")
        if request.body["metadata"]["name"] == f"modelplane-{job['id']}"
    ]
    [container] = created["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"][field] == kept
    assert container["resources"]["requests"][field] == kept
    await jobs_client.post(f"/jobs/{job['id']}/cancel")


@pytest.mark.parametrize(("field", "given"), BAD)
async def test_a_malformed_or_negative_quantity_is_refused_naming_the_field(
    jobs_client, field, given
):
    body = job_body(env="stg", resources={field: given})
    total = (await jobs_client.get("/jobs", params={"limit": 1})).json()["total"]

    r = await jobs_client.post("/jobs", json=body)

    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"].endswith("/invalid-input")
    assert [error["loc"] for error in problem["errors"]] == [["body", "resources", field]]
    assert f"resources.{field}" in problem["detail"]
    assert (await jobs_client.get("/jobs", params={"limit": 1})).json()["total"] == total


async def test_nan_and_infinity_as_json_numbers_are_refused(jobs_client):
    for literal in ("NaN", "Infinity", "-Infinity"):
        body = json.dumps(job_body(env="stg", resources={"cpu": "X"})).replace('"X"', literal)
        r = await jobs_client.post(
            "/jobs", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == 422, (literal, r.text)
        assert [e["loc"] for e in r.json()["errors"]] == [["body", "resources", "cpu"]]
