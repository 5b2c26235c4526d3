"""Events the jobs service reacts to. Thin: parse the event, call the use case."""

import contextlib
import logging
from collections.abc import Callable

from services.jobs import service, store
from services.jobs.domain import DatasetVersionState, JobStatus
from services.jobs.errors import JobAlreadyFinished
from services.jobs.supervisor import JobSupervisor
from shared.consumers import EventConsumer
from shared.db import UnitOfWork
from shared.events import CloudEvent
from shared.events.datasets import (
    DatasetVersionActivated,
    DatasetVersionCreated,
    DatasetVersionEvent,
    DatasetVersionFailed,
    DatasetVersionVerified,
)
from shared.events.gateway import IntegrationConfigChanged
from shared.events.jobs import JobValidated
from shared.events.pipelines import PipelineStageRequested, StageJobCancellationRequested
from shared.integrations import Concern

log = logging.getLogger(__name__)
# Who a stage's job is created by when the event names no actor.
PIPELINES_ACTOR = "pipelines"


async def submit_stage_job(uow: UnitOfWork, event: CloudEvent) -> None:
    """A pipeline stage's job, validated like one from `POST /api/v1/jobs`: a rejected one is
    kept with its JobRejected; an accepted one is started by the supervisor's watcher."""
    requested = event.parse_data(PipelineStageRequested)
    await service.submit_stage_job(uow, requested, actor=event.actor or PIPELINES_ACTOR)


async def keep_integration_config(uow: UnitOfWork, event: CloudEvent) -> None:
    change = event.parse_data(IntegrationConfigChanged)
    if change.concern == Concern.TRAINING_EXECUTION:
        await service.apply_integration_config(uow, change)


class StageJobNotSubmittedYet(Exception):
    """A stage's cancellation came before its request (two consumers, no order between them):
    the cancellation is delivered again, after a back-off, until the job exists."""


def cancel_stage_job(supervisor: Callable[[], JobSupervisor]):
    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        """Kill the job of a stage attempt the pipeline stopped (cancelled, or timed out)."""
        command = event.parse_data(StageJobCancellationRequested)
        job = await store.job_of_stage_attempt(
            uow.session, command.pipeline_run_id, command.stage, command.attempt
        )
        if job is None:
            raise StageJobNotSubmittedYet(
                f"run {command.pipeline_run_id} stage {command.stage} attempt {command.attempt}"
            )
        if JobStatus(job.status).finished:
            return
        with contextlib.suppress(JobAlreadyFinished):  # it ended on its own meanwhile
            await supervisor().cancel(job.id)

    return handle


def start_stage_job(supervisor: Callable[[], JobSupervisor]):
    async def handle(uow: UnitOfWork, event: CloudEvent) -> None:
        """Start a stage's job as soon as it is validated, as `POST /jobs` starts its job, so a
        pipeline's hand-off waits for no watcher round (the watcher still starts any missed)."""
        validated = event.parse_data(JobValidated)
        if validated.pipeline_run_id is None:
            return
        try:
            await supervisor().start(validated.job_id)
        except Exception:
            log.warning(
                "job %s did not start now; the watcher tries again", validated.job_id, exc_info=True
            )

    return handle


def consumers(supervisor: Callable[[], JobSupervisor]) -> tuple[EventConsumer, ...]:
    """Every consumer; the ones that act on running jobs reach them through `supervisor`."""
    return (
        *CONSUMERS,
        EventConsumer(
            durable="jobs-pipelines-stage-cancellation-requested",
            subject=StageJobCancellationRequested.subject,
            handle=cancel_stage_job(supervisor),
        ),
        EventConsumer(
            durable="jobs-jobs-job-validated",
            subject=JobValidated.subject,
            handle=start_stage_job(supervisor),
        ),
    )


def _keep_dataset_version(seen: DatasetVersionState):
    async def keep(uow: UnitOfWork, event: CloudEvent) -> None:
        version = event.parse_data(DatasetVersionEvent)
        await service.keep_dataset_version(uow, version, seen)

    return keep


# What the datasets service says of its versions: a job may name only a verified one.
DATASET_VERSION_CONSUMERS = tuple(
    EventConsumer(
        durable=f"jobs-datasets-dataset-version-{contract.subject.rsplit('.', 1)[1]}",
        subject=contract.subject,
        handle=_keep_dataset_version(seen),
    )
    for contract, seen in (
        (DatasetVersionCreated, DatasetVersionState.CREATED),
        (DatasetVersionVerified, DatasetVersionState.VERIFIED),
        (DatasetVersionActivated, DatasetVersionState.VERIFIED),
        (DatasetVersionFailed, DatasetVersionState.FAILED),
    )
)

CONSUMERS = (
    EventConsumer(
        durable="jobs-pipelines-stage-requested",
        subject=PipelineStageRequested.subject,
        handle=submit_stage_job,
    ),
    EventConsumer(
        durable="jobs-gateway-integration-config-changed",
        subject=IntegrationConfigChanged.subject,
        handle=keep_integration_config,
    ),
    *DATASET_VERSION_CONSUMERS,
)
