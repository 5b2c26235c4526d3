"""Events published by the pipelines service on stream PIPELINES (subjects `pipelines.>`)."""

from uuid import UUID

from pydantic import Field

from shared.events.envelope import EventData
from shared.events.jobs import JobRequest


class PipelineStageRequested(EventData):
    """A pipeline run asks for one attempt of a stage: the jobs service submits `job` as if it
    came through `POST /api/v1/jobs`, and its job events carry the run, stage and attempt."""

    subject = "pipelines.stage.requested"
    pipeline_run_id: UUID
    stage: str = Field(min_length=1, max_length=255)
    attempt: int = Field(ge=1)
    job: JobRequest
