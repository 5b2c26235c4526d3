"""Events published by the jobs service on stream JOBS (subjects `jobs.>`), and the job request
that `POST /api/v1/jobs` and PipelineStageRequested both carry."""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from shared.environments import Env
from shared.events.envelope import EventData


class JobType(StrEnum):
    TRAINING = "training"
    EVALUATION = "evaluation"


class RegisterModel(BaseModel):
    model_id: UUID


class _Request(BaseModel):
    # A request is checked strictly wherever it arrives: an unknown field is a mistake.
    model_config = ConfigDict(extra="forbid")


class JobResources(_Request):
    gpus: int | None = Field(default=None, ge=0)
    gpu_type: str | None = None
    cpu: str | None = None
    memory: str | None = None


class RegisterModelRequest(_Request):
    model_id: UUID


class JobRequest(_Request):
    """A training or evaluation job as asked for, before the data model's rules are applied."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
    project_id: UUID
    env: Env
    job_type: JobType = JobType.TRAINING
    command: Annotated[list[str], Field(min_length=1)]
    working_dir: str | None = None
    image: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    use_gpu: bool = False
    resources: JobResources = Field(default_factory=JobResources)
    dataset_version_ids: list[UUID] = Field(default_factory=list)
    register_model: RegisterModelRequest | None = None


class JobEvent(EventData):
    """What every event about one job carries. The pipeline fields name the attempt of the
    pipeline stage that asked for the job; they are None for a job submitted over HTTP."""

    job_id: UUID
    name: str
    project_id: UUID
    pipeline_run_id: UUID | None = None
    pipeline_stage: str | None = None
    pipeline_attempt: int | None = None


class JobSubmitted(JobEvent):
    """A request was accepted for validation; JobValidated or JobRejected follows."""

    subject = "jobs.job.submitted"
    env: str
    job_type: str
    use_gpu: bool
    gpu_type: str | None  # as requested


class JobSucceeded(JobEvent):
    subject = "jobs.job.succeeded"
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


class JobRejected(JobEvent):
    subject = "jobs.job.rejected"
    env: str
    violations: list[RuleViolation]


class JobValidated(JobEvent):
    subject = "jobs.job.validated"
    env: str
    job_type: str
    use_gpu: bool
    gpu_type: str | None


class JobStarted(JobEvent):
    subject = "jobs.job.started"
    executor: str
    run_id: str | None


class JobFailed(JobEvent):
    subject = "jobs.job.failed"
    run_id: str | None
    exit_code: int | None
    message: str | None


class JobCancelled(JobEvent):
    subject = "jobs.job.cancelled"
    run_id: str | None


class ExperimentRunUpdated(EventData):
    """A job's run was created (status running) or ended (completed, failed or killed, with the
    latest metrics and the artifact URIs read back from the tracking system)."""

    subject = "jobs.experiment_run.updated"
    experiment_run_id: UUID
    job_id: UUID
    project_id: UUID
    tracking_system: str
    tracking_run_id: str
    experiment_name: str
    run_name: str
    status: str
    parameters: dict[str, Any]
    metrics: dict[str, float]
    artifact_uris: list[str]
    start_time: datetime
    end_time: datetime | None
