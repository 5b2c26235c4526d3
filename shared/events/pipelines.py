"""Events published by the pipelines service on stream PIPELINES (subjects `pipelines.>`).

Three families: what happened to a run (`pipelines.run.*`) and to one of its stages
(`pipelines.stage.*`), and the commands a stage sends to the service that does its work
(jobs, registry, serving). A command names the stage attempt (run, stage, attempt); the
answering service's events carry the same three fields, so the run can advance on them.
"""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from shared.events.envelope import EventData
from shared.events.jobs import JobRequest

# ---- commands ------------------------------------------------------------------------------


class PipelineStageRequested(EventData):
    """A pipeline run asks for one attempt of a stage: the jobs service submits `job` as if it
    came through `POST /api/v1/jobs`, and its job events carry the run, stage and attempt."""

    subject = "pipelines.stage.requested"
    pipeline_run_id: UUID
    stage: str = Field(min_length=1, max_length=255)
    attempt: int = Field(ge=1)
    job: JobRequest


class StageCommand(EventData):
    """What every command of a stage attempt carries; `requested_by` is who started the run
    (or approved it, after an approve stage), recorded by the service as the change's actor."""

    pipeline_run_id: UUID
    stage: str = Field(min_length=1, max_length=255)
    attempt: int = Field(ge=1)
    requested_by: str
    # The run's project: the answering service refuses a command about another project's model
    # or endpoint.
    project_id: UUID | None = None


class ModelVersionRegistrationRequested(StageCommand):
    """The registry creates a version of `model_id` from a job's result, then publishes
    ModelVersionCreated naming this stage attempt."""

    subject = "pipelines.stage.registration_requested"
    model_id: UUID
    run_id: str | None = None
    artifact_uri: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    version: str | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class ModelVersionPromotionRequested(StageCommand):
    """The registry moves `version_id` to `to_stage`, then publishes ModelVersionTransitioned
    naming this stage attempt. `approved_by` is the person an upstream approve stage waited for."""

    subject = "pipelines.stage.promotion_requested"
    version_id: UUID
    to_stage: str
    comment: str | None = None
    approved_by: str | None = None


class ModelVersionDeploymentRequested(StageCommand):
    """Serving rolls `version_id` out to `endpoint_id`, then publishes DeploymentHealthy or
    DeploymentFailed naming this stage attempt."""

    subject = "pipelines.stage.deployment_requested"
    endpoint_id: UUID
    version_id: UUID


class StageJobCancellationRequested(StageCommand):
    """The jobs service kills the job of this stage attempt (the run was cancelled, or the
    stage timed out), then publishes JobCancelled (or nothing, if it had already ended)."""

    subject = "pipelines.stage.cancellation_requested"
    reason: str


# ---- what happened to a pipeline -----------------------------------------------------------


class PipelineDefined(EventData):
    """A pipeline was created (version 1) or given a new definition version."""

    subject = "pipelines.pipeline.defined"
    pipeline_id: UUID
    name: str
    project_id: UUID
    version: int
    definition: dict[str, Any]
    defined_by: str


# ---- what happened to a run ----------------------------------------------------------------


class PipelineRunEvent(EventData):
    """What every event about a run carries: the run after the change."""

    pipeline_id: UUID
    pipeline_run_id: UUID
    pipeline_name: str
    project_id: UUID
    status: str
    current_stage: str | None
    retry_count: int
    at: datetime


class PipelinePending(PipelineRunEvent):
    """A run was created; its first stages are asked for."""

    subject = "pipelines.run.pending"
    definition_version: int
    parameters: dict[str, Any]
    orchestration_system: str


class PipelineStarted(PipelineRunEvent):
    """The run is running: its first stage started, or a retried stage started again."""

    subject = "pipelines.run.started"


class PipelineRetrying(PipelineRunEvent):
    """A stage's attempt failed and it is tried again, or a failed run is retried from its
    failed stages on (`stage` None)."""

    subject = "pipelines.run.retrying"
    stage: str | None
    attempt: int | None
    reason: str


class PipelineSucceeded(PipelineRunEvent):
    subject = "pipelines.run.succeeded"


class PipelineFailed(PipelineRunEvent):
    subject = "pipelines.run.failed"
    failed_stage: str | None
    reason: str


class PipelineCancelled(PipelineRunEvent):
    subject = "pipelines.run.cancelled"
    cancelled_by: str


# ---- what happened to a stage --------------------------------------------------------------


class PipelineStageEvent(EventData):
    pipeline_id: UUID
    pipeline_run_id: UUID
    stage: str
    kind: str
    attempt: int
    at: datetime


class PipelineStageStarted(PipelineStageEvent):
    subject = "pipelines.stage.started"
    job_id: UUID | None = None


class PipelineStageSkipped(PipelineStageEvent):
    """The stage's condition was false, or a stage it depends on was skipped."""

    subject = "pipelines.stage.skipped"
    reason: str


class PipelineStageSucceeded(PipelineStageEvent):
    subject = "pipelines.stage.succeeded"
    outputs: dict[str, Any]


class PipelineStageFailed(PipelineStageEvent):
    """One attempt failed; `will_retry` says whether another attempt follows."""

    subject = "pipelines.stage.failed"
    reason: str
    will_retry: bool


class PipelineStageCancelled(PipelineStageEvent):
    subject = "pipelines.stage.cancelled"
    reason: str
