"""The jobs that used a dataset version, learnt from the jobs service's events on the bus."""

import asyncio
import time
from uuid import uuid4

from shared.events import CloudEvent
from shared.events.jobs import JobSucceeded, JobValidated
from tests.bus import publish
from tests.credentials import known_project


async def jobs_of(client, version_id: str, count: int, status: str, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        items = (await client.get(f"/datasets/versions/{version_id}/jobs")).json()["items"]
        if (
            len(items) >= count
            and all(i["job_status"] == status for i in items)
            or time.monotonic() > deadline
        ):
            return items
        await asyncio.sleep(0.1)


def job_event(contract, job_id, project, **data) -> CloudEvent:
    return CloudEvent(
        source="/modelplane/jobs",
        type=contract.type(),
        subject=str(job_id),
        data={"job_id": str(job_id), "name": "train", "project_id": project, **data},
    )


async def test_a_job_naming_a_version_is_linked_to_it(datasets_client, datasets_app, sources, nc):
    project = known_project(datasets_app)
    dataset = (
        await datasets_client.post(
            "/datasets", json={"name": f"ds-{uuid4().hex[:8]}", "project_id": project}
        )
    ).json()
    folder = sources / uuid4().hex
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    version = (
        await datasets_client.post(
            f"/datasets/{dataset['id']}/versions", json={"source_path": str(folder)}
        )
    ).json()
    job_id = uuid4()

    validated = job_event(
        JobValidated,
        job_id,
        project,
        env="dev",
        job_type="training",
        use_gpu=False,
        gpu_type=None,
        dataset_version_ids=[version["id"], str(uuid4())],
    )
    await publish(nc, validated)
    await publish(nc, validated, msg_id=str(uuid4()))  # a redelivery links it once
    [use] = await jobs_of(datasets_client, version["id"], 1, "validated")
    assert use["job_id"] == str(job_id) and use["job_name"] == "train"

    await publish(
        nc, job_event(JobSucceeded, job_id, project, run_id=None, metrics={}, artifact_uri=None)
    )
    [use] = await jobs_of(datasets_client, version["id"], 1, "succeeded")
    assert use["job_status"] == "succeeded"
