"""The pipelines service's tables, all in schema `pipelines`."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
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

SCHEMA = "pipelines"
ENVS_SQL = "env IN ('dev', 'stg', 'prod')"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


class WorkflowPipeline(Base):
    """A named pipeline of a project; its definitions are versioned beside it."""

    __tablename__ = "pipelines"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[UUID]
    description: Mapped[str | None] = mapped_column(Text)
    latest_version: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PipelineDefinitionVersion(Base):
    __tablename__ = "pipeline_definitions"

    pipeline_id: Mapped[UUID] = mapped_column(
        ForeignKey(WorkflowPipeline.id, ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PipelineRun(Base):
    """One run of one definition version: the integration data model's fields, and the state
    the local engine plans from."""

    __tablename__ = "pipeline_runs"
    __table_args__ = (
        CheckConstraint(ENVS_SQL, name="env"),
        UniqueConstraint("orchestration_system", "workflow_id", "workflow_namespace"),
        Index("ix_pipeline_runs_pipeline_created", "pipeline_id", "created_at"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    pipeline_id: Mapped[UUID] = mapped_column(ForeignKey(WorkflowPipeline.id, ondelete="CASCADE"))
    pipeline_name: Mapped[str] = mapped_column(String(255))
    project_id: Mapped[UUID]
    env: Mapped[str] = mapped_column(String(8))
    definition_version: Mapped[int] = mapped_column(Integer)
    # The definition the run ran, as validated: a run never changes with its pipeline.
    pipeline_definition: Mapped[dict[str, Any]] = mapped_column(JSONB)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    orchestration_system: Mapped[str] = mapped_column(String(32))
    workflow_id: Mapped[str] = mapped_column(String(255))
    workflow_namespace: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    current_stage: Mapped[str | None] = mapped_column(String(255))
    retry_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    max_retries: Mapped[int] = mapped_column(Integer)
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class PipelineRunStage(Base):
    __tablename__ = "pipeline_run_stages"
    __table_args__ = (
        # The timeout sweep's question: which stages at work are past their deadline.
        Index(
            "ix_pipeline_run_stages_deadline",
            "deadline",
            postgresql_where=text("deadline IS NOT NULL"),
        ),
    )

    run_id: Mapped[UUID] = mapped_column(
        ForeignKey(PipelineRun.id, ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)  # the order the definition lists it in
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    job_id: Mapped[UUID | None]
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    reason: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class IntegrationConfig(IntegrationConfigCopy, Base):
    """The gateway's IntegrationConfig rows of concern pipeline_orchestration, as its events
    last said: which system runs each env's pipelines."""


metadata = Base.metadata
