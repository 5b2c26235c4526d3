"""Events published by the jobs service on stream JOBS (subjects `jobs.>`)."""

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
