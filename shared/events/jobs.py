"""Events published by the jobs service on stream JOBS (subjects `jobs.>`)."""

from typing import Any
from uuid import UUID

from pydantic import BaseModel

from shared.events.envelope import EventData


class RegisterModel(BaseModel):
    model_id: UUID


class JobSucceeded(EventData):
    subject = "jobs.job.succeeded"
    job_id: UUID
    name: str
    project_id: UUID
    run_id: str | None
    metrics: dict[str, float]
    artifact_uri: str | None
    register_model: RegisterModel | None = None


class RuleViolation(BaseModel):
    rule: str
    message: str


class GpuTypeOptionsChanged(EventData):
    """An option was created, updated or deleted; `option` is its state after (None: deleted)."""

    subject = "jobs.gpu_type_options.changed"
    env: str
    gpu_type_id: str
    change: str  # "created" | "updated" | "deleted"
    option: dict[str, Any] | None


class JobRejected(EventData):
    subject = "jobs.job.rejected"
    job_id: UUID
    name: str
    project_id: UUID
    env: str
    violations: list[RuleViolation]


class JobValidated(EventData):
    subject = "jobs.job.validated"
    job_id: UUID
    name: str
    project_id: UUID
    env: str
    job_type: str
    use_gpu: bool
    gpu_type: str | None


class JobStarted(EventData):
    subject = "jobs.job.started"
    job_id: UUID
    name: str
    project_id: UUID
    executor: str
    run_id: str | None


class JobFailed(EventData):
    subject = "jobs.job.failed"
    job_id: UUID
    name: str
    project_id: UUID
    run_id: str | None
    exit_code: int | None
    message: str | None


class JobCancelled(EventData):
    subject = "jobs.job.cancelled"
    job_id: UUID
    name: str
    project_id: UUID
    run_id: str | None
