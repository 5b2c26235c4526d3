"""Events the jobs service reacts to. Thin: parse the event, call the use case."""

from services.jobs import service
from services.jobs.domain import DatasetVersionState
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
from shared.events.pipelines import PipelineStageRequested
from shared.integrations import Concern

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


def _keep_dataset_version(seen: DatasetVersionState):
    async def keep(uow: UnitOfWork, event: CloudEvent) -> None:
        version = event.parse_data(DatasetVersionEvent)
        await service.keep_dataset_version(uow, version, seen)

    return keep


# What the datasets service says of its versions: a job may name only a verified one.
DATASET_VERSION_CONSUMERS = tuple(
    EventConsumer(durable=f"jobs-datasets-dataset-version-{contract.subject.rsplit('.', 1)[1]}",
                  subject=contract.subject, handle=_keep_dataset_version(seen))
    for contract, seen in ((DatasetVersionCreated, DatasetVersionState.CREATED),
                           (DatasetVersionVerified, DatasetVersionState.VERIFIED),
                           (DatasetVersionActivated, DatasetVersionState.VERIFIED),
                           (DatasetVersionFailed, DatasetVersionState.FAILED))
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
