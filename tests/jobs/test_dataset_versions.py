"""A job may name only dataset versions the datasets service's events said are verified."""

import asyncio
import time
import uuid

from shared.events import CloudEvent
from shared.events.datasets import (
    DatasetVersionCreated,
    DatasetVersionFailed,
    DatasetVersionVerified,
)
from tests.bus import publish, wait_for_events
from tests.jobs.conftest import JOBS_PROJECT
from tests.jobs.test_jobs import job_body


def version_event(contract, version_id: uuid.UUID, dataset_id: uuid.UUID, **data) -> CloudEvent:
    fields = {
        "dataset_version_id": str(version_id),
        "dataset_id": str(dataset_id),
        "dataset_name": "churn",
        "project_id": str(JOBS_PROJECT),
        "versioning_system": "dvc",
        "version_id": f"{uuid.uuid4().hex}.dir",
        **data,
    }
    return CloudEvent(
        source="/modelplane/datasets", type=contract.type(), subject=str(version_id), data=fields
    )


def created(version_id, dataset_id) -> CloudEvent:
    return version_event(
        DatasetVersionCreated,
        version_id,
        dataset_id,
        state="created",
        checksum="md5:x",
        storage_uri="/remote",
        file_count=1,
        total_size_bytes=1,
        compression_ratio=1.0,
        created_at="2026-12-07T00:00:00Z",
        created_by="dana",
    )


async def submit_until(client, body: dict, status: int, timeout: float = 15.0):
    """Submit until the reply has `status` (the datasets events are consumed asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = await client.post("/jobs", json={**body, "name": f"d-{uuid.uuid4().hex[:6]}"})
        if reply.status_code == status or time.monotonic() > deadline:
            return reply
        await asyncio.sleep(0.2)


async def test_unknown_unverified_and_failed_versions_are_refused_naming_the_field(jobs_client, nc):
    dataset, pending, broken = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    unknown = uuid.uuid4()
    await publish(nc, created(pending, dataset))
    await publish(nc, created(broken, dataset))
    await publish(
        nc,
        version_event(
            DatasetVersionFailed,
            broken,
            dataset,
            state="failed",
            reason="a.csv does not match its hash",
            mismatched_files=["a.csv"],
        ),
    )
    await asyncio.sleep(1.0)  # let the jobs service take the events in

    reply = await jobs_client.post(
        "/jobs", json=job_body(dataset_version_ids=[str(unknown), str(pending), str(broken)])
    )

    assert reply.status_code == 422, reply.text
    problem = reply.json()
    assert problem["type"].endswith("/job-rejected")
    assert [e["loc"] for e in problem["errors"]] == [["body", "dataset_version_ids"]] * 3
    assert [e["type"] for e in problem["errors"]] == [
        "dataset-version-known",
        "dataset-version-verified",
        "dataset-version-verified",
    ]
    assert str(unknown) in problem["errors"][0]["msg"]
    assert "created" in problem["errors"][1]["msg"] and "failed" in problem["errors"][2]["msg"]
    events = await wait_for_events(nc, "JOBS", problem["job_id"], count=2, timeout=15)
    assert events[-1].type == "io.modelplane.jobs.job.rejected.v1"
    assert {v.get("field") for v in events[-1].data["violations"]} == {"dataset_version_ids"}


async def test_a_verified_version_is_taken_and_job_events_carry_it(jobs_client, nc):
    dataset, version = uuid.uuid4(), uuid.uuid4()
    # verified arrives before created (another consumer): a late created does not undo it
    await publish(nc, version_event(DatasetVersionVerified, version, dataset, state="verified"))
    await publish(nc, created(version, dataset))
    body = job_body(dataset_version_ids=[str(version)], command=["true"])

    reply = await submit_until(jobs_client, body, 201)

    assert reply.status_code == 201, reply.text
    job = reply.json()
    assert job["dataset_version_ids"] == [str(version)]
    events = await wait_for_events(nc, "JOBS", job["id"], count=2, timeout=15)
    assert [e.type for e in events[:2]] == [
        "io.modelplane.jobs.job.submitted.v1",
        "io.modelplane.jobs.job.validated.v1",
    ]
    assert all(e.data["dataset_version_ids"] == [str(version)] for e in events)

    await asyncio.sleep(0.5)
    again = await jobs_client.post("/jobs", json=body)  # the late created changed nothing
    assert again.status_code == 201, again.text
