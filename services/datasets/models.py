"""The datasets service's tables, all in schema `datasets`."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import schema_metadata
from shared.integration_configs import IntegrationConfigCopy

SCHEMA = "datasets"
STATES_SQL = "state IN ('created', 'verified', 'active', 'failed')"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


class DatasetRecord(Base):
    """A named dataset of a project; `active_version_id` is the version in use."""

    __tablename__ = "datasets"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    project_id: Mapped[UUID]
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    active_version_id: Mapped[UUID | None]
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DatasetVersion(Base):
    """One version of a dataset with the integration data model's fields. `version_id` is DVC's
    content hash; `parent_id` the parent's row and `parent_version_id` its content hash."""

    __tablename__ = "dataset_versions"
    __table_args__ = (
        UniqueConstraint(
            "dataset_id",
            "versioning_system",
            "version_id",
            name="uq_dataset_versions_system_version",
        ),
        UniqueConstraint("dataset_id", "version_tag", name="uq_dataset_versions_tag"),
        CheckConstraint(STATES_SQL, name="state"),
        CheckConstraint("versioning_system IN ('dvc')", name="versioning_system"),
        CheckConstraint("parent_id IS NULL OR parent_id <> id", name="not_own_parent"),
        CheckConstraint(
            "file_count >= 0 AND total_size_bytes >= 0 AND bytes_added >= 0", name="sizes"
        ),
        Index("ix_dataset_versions_dataset_created", "dataset_id", "created_at"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    dataset_id: Mapped[UUID] = mapped_column(ForeignKey(DatasetRecord.id, ondelete="CASCADE"))
    versioning_system: Mapped[str] = mapped_column(String(16))
    version_id: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[UUID | None] = mapped_column(ForeignKey("datasets.dataset_versions.id"))
    parent_version_id: Mapped[str | None] = mapped_column(String(64))
    version_tag: Mapped[str | None] = mapped_column(String(128))
    checksum: Mapped[str] = mapped_column(String(80))
    storage_uri: Mapped[str] = mapped_column(Text)
    diff_summary: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    file_count: Mapped[int] = mapped_column(Integer)
    total_size_bytes: Mapped[int] = mapped_column(BigInteger)
    bytes_added: Mapped[int] = mapped_column(BigInteger)
    compression_ratio: Mapped[float] = mapped_column(Double)
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str | None] = mapped_column(Text)
    mismatched_files: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    activated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DatasetVersionUse(Base):
    """A job that named the version in its `dataset_version_ids`, as the jobs service's events
    said: the link from a version down its lineage to jobs, runs and models."""

    __tablename__ = "dataset_version_uses"
    __table_args__ = (Index("ix_dataset_version_uses_job", "job_id"),)

    dataset_version_id: Mapped[UUID] = mapped_column(
        ForeignKey(DatasetVersion.id, ondelete="CASCADE"), primary_key=True
    )
    job_id: Mapped[UUID] = mapped_column(primary_key=True)
    job_name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[UUID]
    # The job's last state seen: validated, succeeded, failed or cancelled.
    job_status: Mapped[str] = mapped_column(String(16))
    first_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IntegrationConfig(IntegrationConfigCopy, Base):
    """The gateway's IntegrationConfig rows naming an env's DVC remote, as its events last said."""


metadata = Base.metadata
