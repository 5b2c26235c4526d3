"""Events the registry reacts to. Thin: parse the event, call the use case."""

import logging

from services.registry import service, store
from shared.consumers import EventConsumer
from shared.db import UnitOfWork
from shared.errors import Problem
from shared.events import CloudEvent
from shared.events.jobs import JobSucceeded
from shared.events.pipelines import (
    ModelVersionPromotionRequested,
    ModelVersionRegistrationRequested,
)
from shared.events.serving import DeploymentEvent, DeploymentRolledBack

log = logging.getLogger(__name__)


async def register_trained_version(uow: UnitOfWork, event: CloudEvent) -> None:
    """A job that asked for it gets a new version of its model, linked to the job's run."""
    job = event.parse_data(JobSucceeded)
    if job.register_model is None:
        return
    model_id = job.register_model.model_id
    if await store.get_model(uow.conn, model_id) is None:
        log.warning("job %s asked to register into unknown model %s; skipped", job.job_id, model_id)
        return
    await service.create_version(
        uow,
        model_id,
        version=None,
        actor=event.actor or "jobs",
        run_id=job.run_id,
        metrics=job.metrics,
        artifact_uri=job.artifact_uri,
        description=f"trained by job {job.name} ({job.job_id})",
        tags={"source_job_id": str(job.job_id)},
    )


async def register_for_pipeline_stage(uow: UnitOfWork, event: CloudEvent) -> None:
    """A register stage's version; its ModelVersionCreated (or a refusal) names the attempt."""
    command = event.parse_data(ModelVersionRegistrationRequested)
    try:
        await service.register_for_stage(uow, command, actor=event.actor or command.requested_by)
    except Problem as refusal:
        service.refuse_stage_command(uow, command, refusal)


async def promote_for_pipeline_stage(uow: UnitOfWork, event: CloudEvent) -> None:
    """A promote stage's transition; its ModelVersionTransitioned (or a refusal) names the
    attempt. The transition's rules are the same as for a person's."""
    command = event.parse_data(ModelVersionPromotionRequested)
    try:
        await service.promote_for_stage(uow, command, actor=event.actor or command.requested_by)
    except Problem as refusal:
        service.refuse_stage_command(uow, command, refusal)


async def note_where_version_serves(uow: UnitOfWork, event: CloudEvent) -> None:
    """A deployment changed state: the version's list of where it serves follows (a late event
    older than the one kept changes nothing; the inbox drops a redelivery)."""
    if event.type == DeploymentRolledBack.type():
        return  # the failed deployment's own DeploymentFailed says what changed for it
    await service.deployment_changed(uow, event.parse_data(DeploymentEvent), event.time)


CONSUMERS = (
    EventConsumer(
        durable="registry-jobs-job-succeeded",
        subject=JobSucceeded.subject,
        handle=register_trained_version,
    ),
    EventConsumer(
        durable="registry-pipelines-stage-registration-requested",
        subject=ModelVersionRegistrationRequested.subject,
        handle=register_for_pipeline_stage,
    ),
    EventConsumer(
        durable="registry-pipelines-stage-promotion-requested",
        subject=ModelVersionPromotionRequested.subject,
        handle=promote_for_pipeline_stage,
    ),
    EventConsumer(
        durable="registry-serving-deployment-changed",
        subject="serving.deployment.>",
        handle=note_where_version_serves,
    ),
)
