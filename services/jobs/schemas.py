"""The jobs service's request and response bodies."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, StringConstraints

from services.jobs.domain import JobStatus, RunStatus
from shared.environments import Env
from shared.events.jobs import JobRequest, JobType


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GpuTypeCreate(Body):
    id: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=63)]
    label: Annotated[str, StringConstraints(max_length=255)]
    env: Env
    enabled: bool = True
    priority: int = 0
    node_label: str | None = None


class GpuTypeUpdate(Body):
    label: Annotated[str, StringConstraints(max_length=255)] | None = None
    enabled: bool | None = None
    priority: int | None = None
    node_label: str | None = None


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
    artifact_uris: list[str]
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


class JobPage(BaseModel):
    items: list[JobOut]
    total: int
