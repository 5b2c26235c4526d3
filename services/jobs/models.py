"""The jobs service's tables, all in schema `jobs`."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
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

SCHEMA = "jobs"
ENVS_SQL = "env IN ('dev', 'stg', 'prod')"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


class GpuTypeOption(Base):
    __tablename__ = "gpu_type_options"
    __table_args__ = (CheckConstraint(ENVS_SQL, name="env"),)

    env: Mapped[str] = mapped_column(String(8), primary_key=True)
    id: Mapped[str] = mapped_column(String(63), primary_key=True)  # canonical: lowercase
    label: Mapped[str] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    node_label: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TrainingJob(Base):
    __tablename__ = "training_jobs"
    __table_args__ = (
        CheckConstraint(ENVS_SQL, name="env"),
        Index("ix_training_jobs_status", "status"),
        Index("ix_training_jobs_project_created", "project_id", "created_at"),
        # One job per attempt of a pipeline stage (jobs submitted over HTTP have NULLs here).
        UniqueConstraint(
            "pipeline_run_id",
            "pipeline_stage",
            "pipeline_attempt",
            name="uq_training_jobs_pipeline_stage_attempt",
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[UUID]
    env: Mapped[str] = mapped_column(String(8))
    job_type: Mapped[str] = mapped_column(String(16))
    command: Mapped[list[str]] = mapped_column(JSONB)
    working_dir: Mapped[str | None] = mapped_column(Text)
    python_env: Mapped[str | None] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    use_gpu: Mapped[bool] = mapped_column(Boolean)
    # As requested, except gpu_type which is stored canonical (lowercase).
    resources: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    dataset_version_ids: Mapped[list[str]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    register_model: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16))
    violations: Mapped[list[dict[str, str]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    executor: Mapped[str | None] = mapped_column(String(32))
    handle: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set while a supervisor starts the validated job; an old one is a start that crashed.
    start_claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Where the job came from when a pipeline stage asked for it (a plain reference, no FK).
    pipeline_run_id: Mapped[UUID | None]
    pipeline_stage: Mapped[str | None] = mapped_column(String(255))
    pipeline_attempt: Mapped[int | None] = mapped_column(Integer)


class ExperimentRun(Base):
    __tablename__ = "experiment_runs"
    __table_args__ = (UniqueConstraint("tracking_system", "tracking_run_id"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    job_id: Mapped[UUID] = mapped_column(
        ForeignKey(TrainingJob.id, ondelete="CASCADE"), unique=True
    )
    tracking_system: Mapped[str] = mapped_column(String(32))
    tracking_run_id: Mapped[str] = mapped_column(String(255))
    experiment_name: Mapped[str] = mapped_column(String(255))
    run_name: Mapped[str] = mapped_column(String(255))
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    metrics: Mapped[dict[str, float]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    artifact_uris: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    artifacts: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DatasetVersionSeen(Base):
    """A dataset version as the datasets service's events last said: whether a job may use it."""

    __tablename__ = "dataset_versions"
    __table_args__ = (CheckConstraint("state IN ('created', 'verified', 'failed')", name="state"),)

    dataset_version_id: Mapped[UUID] = mapped_column(primary_key=True)
    dataset_id: Mapped[UUID]
    project_id: Mapped[UUID]
    # created, verified (active counts as verified) or failed; failed is for good.
    state: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class IntegrationConfig(IntegrationConfigCopy, Base):
    """The gateway's IntegrationConfig rows this service uses, as its events last said."""


metadata = Base.metadata
