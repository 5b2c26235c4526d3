"""Events the datasets service reacts to: the jobs that used its versions, and the env's DVC
remote chosen by IntegrationConfig. Thin: parse, call the use case; the inbox makes a
redelivery a no-op."""

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from services.datasets import service
from shared.consumers import EventConsumer
from shared.db import UnitOfWork
from shared.events import CloudEvent
from shared.events.gateway import IntegrationConfigChanged
from shared.events.jobs import JobCancelled, JobFailed, JobSucceeded, JobValidated
from shared.integrations import Concern


class JobUsingDatasets(BaseModel):
    """What the datasets service reads of a job event: the job, and the dataset versions it
    names (`dataset_version_ids`; absent from an event that names none)."""

    model_config = ConfigDict(extra="ignore")

    job_id: UUID
    name: str
    project_id: UUID
    dataset_version_ids: list[UUID] = Field(default_factory=list)


async def link_validated_job(uow: UnitOfWork, event: CloudEvent) -> None:
    job = JobUsingDatasets.model_validate(event.data)
    if job.dataset_version_ids:
        await service.job_used_versions(
            uow,
            job_id=job.job_id,
            job_name=job.name,
            project_id=job.project_id,
            dataset_version_ids=job.dataset_version_ids,
            status="validated",
        )


def _ended(status: str):
    async def record(uow: UnitOfWork, event: CloudEvent) -> None:
        await service.job_ended(uow, JobUsingDatasets.model_validate(event.data).job_id, status)

    return record


async def keep_integration_config(uow: UnitOfWork, event: CloudEvent) -> None:
    change = event.parse_data(IntegrationConfigChanged)
    if change.concern == Concern.DATASET_VERSIONING:
        await service.apply_integration_config(uow, change)


CONSUMERS = (
    EventConsumer(
        durable="datasets-gateway-integration-config-changed",
        subject=IntegrationConfigChanged.subject,
        handle=keep_integration_config,
    ),
    EventConsumer(
        durable="datasets-jobs-job-validated",
        subject=JobValidated.subject,
        handle=link_validated_job,
    ),
    EventConsumer(
        durable="datasets-jobs-job-succeeded",
        subject=JobSucceeded.subject,
        handle=_ended("succeeded"),
    ),
    EventConsumer(
        durable="datasets-jobs-job-failed", subject=JobFailed.subject, handle=_ended("failed")
    ),
    EventConsumer(
        durable="datasets-jobs-job-cancelled",
        subject=JobCancelled.subject,
        handle=_ended("cancelled"),
    ),
)
