"""Starting a job holds no transaction or row lock while MLflow and the executor are called,
and a start that crashed after claiming its job is finished by the watcher, with one run."""

import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
from mlflow.tracking import MlflowClient

from services.jobs import service, store
from services.jobs.integrations.local import LocalExecutor
from services.jobs.schemas import JobCreate
from services.jobs.supervisor import JOB_TAG, JobSupervisor
from shared.db import apply_changes
from tests.jobs.test_jobs import SCRIPTS, job_body, wait_status


async def claimed_job(runtime, claimed_at: datetime, **fields) -> uuid.UUID:
    """A validated job that a supervisor claimed at `claimed_at`, as a start in progress."""
    async with runtime.uow() as uow:
        job = await service.submit_job(uow, JobCreate(**job_body(**fields)), actor="carol")
        await apply_changes(uow.session, job, {"start_claimed_at": claimed_at})
    return job.id


def runs_of(tracking_uri: str, job_id: uuid.UUID) -> list:
    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, f"tags.`{JOB_TAG}` = '{job_id}'")


class GatedExecutor(LocalExecutor):
    """A local executor whose submit waits for the test to open the gate."""

    def __init__(self, state_dir) -> None:
        super().__init__(state_dir)
        self.submitting = asyncio.Event()
        self.gate = asyncio.Event()

    async def submit(self, spec):
        self.submitting.set()
        await self.gate.wait()
        return await super().submit(spec)


async def test_no_row_lock_is_held_while_the_executor_is_called(
    jobs_app, jobs_client, jobs_settings, database_url
):
    runtime = jobs_app.state.runtime
    # A fresh claim keeps the session's watcher away; this supervisor's zero lease takes it.
    job_id = await claimed_job(runtime, datetime.now(UTC), parameters={"epochs": 1})
    executor = GatedExecutor(jobs_settings.jobs_state_dir / "runs")
    supervisor = JobSupervisor(
        jobs_settings.model_copy(update={"jobs_start_claim_seconds": 0}),
        runtime.uow,
        tracking=jobs_app.state.supervisor.tracking,
        executors={"local": executor},
    )

    starting = asyncio.create_task(supervisor.start(job_id))
    await asyncio.wait_for(executor.submitting.wait(), 30)
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg:", "postgresql:", 1))
    try:
        async with conn.transaction():
            locked = await conn.fetchval(
                "SELECT status FROM jobs.training_jobs WHERE id = $1 FOR UPDATE NOWAIT", job_id
            )
        assert locked == "validated"
    finally:
        await conn.close()
    executor.gate.set()
    await asyncio.wait_for(starting, 30)

    job = await wait_status(jobs_client, str(job_id), {"succeeded", "failed"})
    assert job["status"] == "succeeded", job


async def test_a_start_that_crashed_after_its_claim_is_finished_once_the_claim_is_stale(
    jobs_app, jobs_client, jobs_settings
):
    runtime = jobs_app.state.runtime
    tracking = jobs_app.state.supervisor.tracking
    job_id = await claimed_job(
        runtime,
        datetime.now(UTC),
        parameters={"epochs": 1},
        command=[sys.executable, str(SCRIPTS / "train.py")],
    )
    async with runtime.uow() as uow:
        job = await store.get_job(uow.session, job_id)
    # What the crashed start had done: its MLflow run exists, nothing recorded it.
    run_id = await tracking.find_or_create_run(
        f"{job.project_id}/{job.name}",
        "crashed",
        params={},
        tags={JOB_TAG: str(job_id)},
        identified_by=JOB_TAG,
    )

    await asyncio.sleep(3 * jobs_settings.jobs_watch_seconds)
    fresh = (await jobs_client.get(f"/jobs/{job_id}")).json()
    assert fresh["status"] == "validated"  # a claim within its lease is left to its holder

    async with runtime.uow() as uow:
        job = await store.lock_job(uow.session, job_id)
        await apply_changes(
            uow.session, job, {"start_claimed_at": datetime.now(UTC) - timedelta(hours=1)}
        )

    job = await wait_status(jobs_client, str(job_id), {"succeeded", "failed"})
    assert job["status"] == "succeeded", job
    assert job["experiment_run"]["tracking_run_id"] == run_id
    assert job["experiment_run"]["metrics"] == {"accuracy": 0.5}
    assert [r.info.run_id for r in runs_of(tracking.tracking_uri, job_id)] == [run_id]


async def test_a_job_cancelled_while_being_started_is_stopped_by_its_starter(
    jobs_app, jobs_client, jobs_settings, wait_finished
):
    runtime = jobs_app.state.runtime
    tracking = jobs_app.state.supervisor.tracking
    job_id = await claimed_job(
        runtime,
        datetime.now(UTC),
        parameters={},
        command=[sys.executable, str(SCRIPTS / "sleep.py")],
    )
    executor = GatedExecutor(jobs_settings.jobs_state_dir / "runs")
    supervisor = JobSupervisor(
        jobs_settings.model_copy(update={"jobs_start_claim_seconds": 0}),
        runtime.uow,
        tracking=tracking,
        executors={"local": executor},
    )
    starting = asyncio.create_task(supervisor.start(job_id))
    await asyncio.wait_for(executor.submitting.wait(), 30)

    r = await jobs_client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "killed"
    executor.gate.set()
    await asyncio.wait_for(starting, 30)

    # What the starter had submitted is stopped, and its MLflow run ended as killed.
    assert (await wait_finished(executor, str(job_id))).state == "killed"
    [run] = runs_of(tracking.tracking_uri, job_id)
    assert run.info.status == "KILLED"
    job = (await jobs_client.get(f"/jobs/{job_id}")).json()
    assert job["status"] == "killed" and job["message"] == "cancelled"
