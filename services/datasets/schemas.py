"""The datasets service's request and response bodies. Requests carry plain types: the domain
checks the rules, so one 422 lists every violation, each naming its field."""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetCreate(Body):
    name: str = Field(max_length=1000)
    project_id: UUID
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class VersionCreate(Body):
    """A version from a directory the service can read (under one of its source roots)."""

    source_path: str = Field(min_length=1, max_length=4096)
    parent_version_id: str | None = Field(default=None, max_length=64)
    version_tag: str | None = Field(default=None, max_length=1000)


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    project_id: UUID
    name: str
    description: str | None
    tags: dict[str, str]
    active_version_id: UUID | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class DatasetPage(BaseModel):
    items: list[DatasetOut]
    total: int


class VersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    dataset_id: UUID
    versioning_system: str
    version_id: str
    parent_id: UUID | None
    parent_version_id: str | None
    version_tag: str | None
    checksum: str
    storage_uri: str
    diff_summary: dict[str, Any]
    file_count: int
    total_size_bytes: int
    bytes_added: int
    compression_ratio: float
    state: str
    state_reason: str | None
    mismatched_files: list[str]
    created_at: datetime
    created_by: str
    verified_at: datetime | None
    activated_at: datetime | None


class VersionPage(BaseModel):
    items: list[VersionOut]
    total: int


class LineageOut(BaseModel):
    """The dataset's version tree, and the chain from its root down to the version asked about."""

    dataset_id: UUID
    version: UUID
    path: list[UUID]
    tree: list[dict[str, Any]]


class DiffOut(BaseModel):
    version: UUID
    against: UUID | None
    summary: dict[str, Any]


class JobUseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    job_id: UUID
    job_name: str
    project_id: UUID
    job_status: str
    first_seen_at: datetime
    updated_at: datetime


class JobUsePage(BaseModel):
    items: list[JobUseOut]
    total: int
