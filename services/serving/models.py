"""The serving service's tables, all in schema `serving`."""

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

SCHEMA = "serving"
ENVS_SQL = "env IN ('dev', 'stg', 'prod')"
FRAMEWORKS_SQL = "serving_framework IN ('ray_serve', 'kserve')"
STATES_SQL = "state IN ('created', 'deploying', 'healthy', 'degraded', 'failed', 'retired')"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


class ServingEndpoint(Base):
    """A named place predictions go: it serves a pinned version or follows a stage of a model.
    `live_deployment_id` is the deployment its traffic goes to."""

    __tablename__ = "serving_endpoints"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint(ENVS_SQL, name="env"),
        CheckConstraint(FRAMEWORKS_SQL, name="serving_framework"),
        CheckConstraint(
            "(model_version_id IS NULL) <> (follow_stage IS NULL)", name="serves_one_of"
        ),
        Index("ix_serving_endpoints_model_follow", "model_id", "follow_stage"),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    project_id: Mapped[UUID]
    name: Mapped[str] = mapped_column(String(63))
    model_id: Mapped[UUID]
    model_version_id: Mapped[UUID | None]  # pinned
    follow_stage: Mapped[str | None] = mapped_column(String(16))
    serving_framework: Mapped[str] = mapped_column(String(16))
    namespace: Mapped[str] = mapped_column(String(63))
    env: Mapped[str] = mapped_column(String(8))
    # What every deployment of the endpoint asks for (the domain's DeploymentSpec, as JSON).
    deployment_spec: Mapped[dict[str, Any]] = mapped_column(JSONB)
    live_deployment_id: Mapped[UUID | None]
    retired: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ServingDeployment(Base):
    """One model version on one framework resource, with every field of the integration data
    model; `retire_requested` marks one the reconciler is to take off its framework."""

    __tablename__ = "serving_deployments"
    __table_args__ = (
        UniqueConstraint(
            "serving_framework",
            "framework_resource_id",
            "framework_namespace",
            name="uq_serving_deployments_framework_resource",
        ),
        CheckConstraint(FRAMEWORKS_SQL, name="serving_framework"),
        CheckConstraint(STATES_SQL, name="state"),
        CheckConstraint("min_replicas >= 0", name="min_replicas"),
        CheckConstraint("max_replicas >= min_replicas", name="max_replicas"),
        CheckConstraint(
            "replica_count BETWEEN min_replicas AND max_replicas", name="replica_count"
        ),
        Index("ix_serving_deployments_endpoint_created", "endpoint_id", "created_at"),
        # The reconciler's work: every deployment not yet retired.
        Index(
            "ix_serving_deployments_active", "state", postgresql_where=text("state <> 'retired'")
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    endpoint_id: Mapped[UUID] = mapped_column(ForeignKey(ServingEndpoint.id, ondelete="CASCADE"))
    model_id: Mapped[UUID]
    model_version_id: Mapped[UUID]
    version: Mapped[str | None] = mapped_column(String(128))
    model_uri: Mapped[str] = mapped_column(Text)
    serving_framework: Mapped[str] = mapped_column(String(16))
    framework_resource_id: Mapped[str] = mapped_column(String(63))
    framework_namespace: Mapped[str] = mapped_column(String(63))
    replica_count: Mapped[int] = mapped_column(Integer)
    min_replicas: Mapped[int] = mapped_column(Integer)
    max_replicas: Mapped[int] = mapped_column(Integer)
    autoscaling_metrics: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, server_default=text("'[]'::jsonb")
    )
    resource_requests: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    resource_limits: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    gpu_type: Mapped[str | None] = mapped_column(String(63))
    state: Mapped[str] = mapped_column(String(16))
    state_reason: Mapped[str | None] = mapped_column(Text)
    framework_status: Mapped[dict[str, Any]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    retire_requested: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    unreachable_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    deployed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    healthy_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The pipeline deploy stage attempt that asked for it, if one did.
    pipeline_run_id: Mapped[UUID | None]
    pipeline_stage: Mapped[str | None] = mapped_column(String(255))
    pipeline_attempt: Mapped[int | None] = mapped_column(Integer)


class ModelVersionCopy(Base):
    """The registry's versions as its events last said: what a deployment needs to load one."""

    __tablename__ = "model_versions"
    __table_args__ = (Index("ix_model_versions_model_stage", "model_id", "stage"),)

    version_id: Mapped[UUID] = mapped_column(primary_key=True)
    model_id: Mapped[UUID]
    model_name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(16))
    artifact_uri: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class GpuTypeCopy(Base):
    """The jobs service's GPU type options as its GpuTypeOptionsChanged events last said."""

    __tablename__ = "gpu_types"
    __table_args__ = (CheckConstraint(ENVS_SQL, name="env"),)

    env: Mapped[str] = mapped_column(String(8), primary_key=True)
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean)
    node_label: Mapped[str | None] = mapped_column(String(255))


class IntegrationConfig(IntegrationConfigCopy, Base):
    """The gateway's serving IntegrationConfig of each env, as its events last said."""


metadata = Base.metadata
