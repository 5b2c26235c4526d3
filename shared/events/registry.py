"""Events published by the registry service on stream REGISTRY (subjects `registry.>`)."""

from typing import Any
from uuid import UUID

from shared.events.envelope import EventData


class ModelRegistered(EventData):
    subject = "registry.model.registered"
    model_id: UUID
    name: str
    project_id: UUID
    description: str | None
    tags: dict[str, str]
    created_by: str


class ModelUpdated(EventData):
    subject = "registry.model.updated"
    model_id: UUID
    name: str
    project_id: UUID
    changes: dict[str, Any]


class ModelDeleted(EventData):
    subject = "registry.model.deleted"
    model_id: UUID
    name: str
    project_id: UUID
    deleted_versions: int


class ModelVersionCreated(EventData):
    subject = "registry.model_version.created"
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str
    stage: str
    run_id: str | None
    artifact_uri: str | None
    metrics: dict[str, float]
    created_by: str


class ModelVersionUpdated(EventData):
    subject = "registry.model_version.updated"
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str
    changes: dict[str, Any]


class ModelVersionDeleted(EventData):
    subject = "registry.model_version.deleted"
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str


class ModelVersionTransitioned(EventData):
    subject = "registry.model_version.transitioned"
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str
    from_stage: str
    to_stage: str
    comment: str | None
    actor: str
