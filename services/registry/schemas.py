"""The registry's request and response bodies."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.registry.domain import MAX_VERSION_LENGTH, ModelStage

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
VersionLabel = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_VERSION_LENGTH, pattern=r"^[^/]+$"
    ),
]
Tags = dict[str, str]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCreate(Body):
    name: Name
    project_id: UUID
    description: str | None = None
    tags: Tags = Field(default_factory=dict)


class ModelUpdate(Body):
    name: Name | None = None
    description: str | None = None
    tags: Tags | None = None


class VersionCreate(Body):
    version: VersionLabel | None = Field(
        default=None, description="The version's label; numbered 1, 2, 3, ... when omitted."
    )
    description: str | None = None
    run_id: str | None = None
    artifact_version_id: UUID | None = None
    artifact_uri: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class VersionUpdate(Body):
    description: str | None = None
    tags: Tags | None = None
    metadata: dict[str, Any] | None = None


class TransitionRequest(Body):
    stage: ModelStage
    comment: str | None = Field(default=None, max_length=10_000)


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ModelOut(Out):
    id: UUID
    name: str
    project_id: UUID
    description: str | None
    tags: Tags
    created_by: str
    created_at: datetime
    updated_at: datetime = Field(
        description="When the model was last changed, or a version of it created, moved to "
        "another stage or deleted (as MLflow's last_updated_timestamp)"
    )


class VersionOut(Out):
    id: UUID
    model_id: UUID
    version: str
    description: str | None
    stage: ModelStage
    run_id: str | None
    artifact_version_id: UUID | None
    artifact_uri: str | None
    metrics: dict[str, float]
    tags: Tags
    metadata: dict[str, Any] = Field(validation_alias="meta")
    approved_by: str | None
    approved_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class ModelDetail(ModelOut):
    versions: list[VersionOut] = Field(description="The newest versions, newest first.")
    versions_total: int


class TransitionOut(Out):
    id: UUID
    version_id: UUID
    model_id: UUID
    from_stage: ModelStage
    to_stage: ModelStage
    comment: str | None
    transitioned_by: str
    transitioned_at: datetime


class TransitionResult(BaseModel):
    version: VersionOut
    transitions: list[TransitionOut] = Field(
        description="What the transition recorded: the archive of the version it replaced in "
        "production, if any, then its own."
    )


class ModelPage(BaseModel):
    items: list[ModelOut]
    total: int


class VersionPage(BaseModel):
    items: list[VersionOut]
    total: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class TransitionPage(BaseModel):
    items: list[TransitionOut]
    total: int


class ModelSummary(BaseModel):
    id: UUID
    name: str
    project_id: UUID
    versions: int
    by_stage: dict[ModelStage, int]
    latest_version: str | None
    production_version: str | None
    updated_at: datetime


class SummaryPage(BaseModel):
    items: list[ModelSummary]
    total: int
    versions: int
    by_stage: dict[ModelStage, int]
