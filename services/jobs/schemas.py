"""The jobs service's request and response bodies."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.jobs.domain import JobStatus, RunStatus
from shared.environments import Env
from shared.events.jobs import JobRequest, JobType
from shared.validation import INT32_MAX, INT32_MIN, Text


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


Label = Annotated[Text, StringConstraints(max_length=255)]
Priority = Annotated[int, Field(ge=INT32_MIN, le=INT32_MAX, description="Lower comes first")]


class GpuTypeCreate(Body):
    id: Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=63)]
    label: Label
    env: Env
    enabled: bool = True
    priority: Priority = 0
    node_label: Label | None = None


class GpuTypeUpdate(Body):
    label: Label | None = None
    enabled: bool | None = None
    priority: Priority | None = None
    node_label: Label | None = None


class GpuTypeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    env: Env
    label: str
    enabled: bool
    priority: int
    node_label: str | None
    created_at: datetime
    updated_at: datetime


class GpuTypePage(BaseModel):
    items: list[GpuTypeOut]
    total: int


class JobCreate(JobRequest):
    """The body of `POST /api/v1/jobs`: exactly the job request a pipeline stage carries."""


class ExperimentRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    tracking_system: str
    tracking_run_id: str
    experiment_name: str
    run_name: str
    parameters: dict[str, Any]
    metrics: dict[str, float]
    artifact_uris: list[str] = Field(description="The run's artifact root, as MLflow reports it")
    artifacts: list[str] = Field(description="The files the run logged, as paths under its root")
    status: RunStatus
    start_time: datetime
    end_time: datetime | None


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    name: str
    project_id: UUID
    env: Env
    job_type: JobType
    command: list[str]
    working_dir: str | None
    python_env: str | None
    image: str | None
    parameters: dict[str, Any]
    use_gpu: bool
    resources: dict[str, Any]
    dataset_version_ids: list[UUID]
    register_model: dict[str, Any] | None
    status: JobStatus
    violations: list[dict[str, str]]
    executor: str | None
    exit_code: int | None
    message: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    pipeline_run_id: UUID | None
    pipeline_stage: str | None
    pipeline_attempt: int | None
    experiment_run: ExperimentRunOut | None = None
    warnings: list[str] = Field(
        default_factory=list, description="What of the request the job's executor ignores"
    )


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
