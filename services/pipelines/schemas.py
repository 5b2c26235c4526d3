"""The pipelines service's request and response bodies."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.pipelines.domain import MAX_RETRIES
from shared.environments import Env
from shared.validation import INT32_MAX, JsonObject, Text

Name = Annotated[Text, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PipelineCreate(Body):
    name: Name
    project_id: UUID
    description: Text | None = None
    definition: JsonObject = Field(
        description="A DAG of named stages: {'parameters': {...defaults}, 'stages': [{'name', "
        "'kind', 'depends_on', 'when', 'max_retries', 'timeout_seconds', 'parameters'}]}"
    )


class DefinitionCreate(Body):
    definition: JsonObject


class RunCreate(Body):
    env: Env = Env.DEV
    parameters: JsonObject = Field(default_factory=dict)
    definition_version: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="The definition to run; the latest when omitted.",
    )
    max_retries: int = Field(
        default=3,
        ge=0,
        le=MAX_RETRIES,
        description="How often the run may be retried once it failed.",
    )


class ApprovalRequest(Body):
    approved: bool = True
    comment: Text | None = Field(default=None, max_length=10_000)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PipelineOut(Out):
    id: UUID
    name: str
    project_id: UUID
    description: str | None
    latest_version: int
    created_by: str
    created_at: datetime
    updated_at: datetime


class DefinitionOut(Out):
    pipeline_id: UUID
    version: int
    definition: dict[str, Any]
    created_by: str
    created_at: datetime


class PipelineDetail(PipelineOut):
    definition: dict[str, Any]


class PipelinePage(BaseModel):
    items: list[PipelineOut]
    total: int


class StageOut(Out):
    name: str
    kind: str
    status: str
    attempt: int
    job_id: UUID | None
    outputs: dict[str, Any]
    reason: str | None
    started_at: datetime | None
    ended_at: datetime | None


class RunOut(Out):
    id: UUID
    pipeline_id: UUID
    pipeline_name: str
    project_id: UUID
    env: str
    definition_version: int
    parameters: dict[str, Any]
    orchestration_system: str
    workflow_id: str
    workflow_namespace: str
    status: str
    current_stage: str | None
    retry_count: int
    max_retries: int
    start_time: datetime | None
    end_time: datetime | None
    started_by: str
    created_at: datetime


class RunDetail(RunOut):
    pipeline_definition: dict[str, Any]
    stages: list[StageOut]


class RunPage(BaseModel):
    items: list[RunOut]
    total: int
