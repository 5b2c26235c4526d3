"""The registry's tables, all in schema `registry`."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.registry.domain import MAX_APPROVALS
from shared.db import schema_metadata

SCHEMA = "registry"
STAGES_SQL = "stage IN ('none', 'staging', 'production', 'archived')"
# Tags are a list of labels or an object of key and value; never JSON null (migration 0010).
TAGS_SQL = "jsonb_typeof(tags) IN ('array', 'object')"


class Base(DeclarativeBase):
    metadata = schema_metadata(SCHEMA)


class RegisteredModel(Base):
    __tablename__ = "registered_models"
    __table_args__ = (
        UniqueConstraint("project_id", "name"),
        CheckConstraint(TAGS_SQL, name="tags_json"),
        Index("ix_registered_models_tags", "tags", postgresql_using="gin"),
        # Every project's models in name order, and a search by a substring of the name
        # (ILIKE '%…%', by trigrams): migration 0009.
        Index("ix_registered_models_name_id", "name", "id"),
        Index(
            "ix_registered_models_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    project_id: Mapped[UUID]
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[dict[str, str] | list[str]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Numbers the versions created without a label: 1, 2, 3, ...
    version_counter: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # The version serving production, if one does: set by the transition that moves it.
    production_version_id: Mapped[UUID | None]
    production_version: Mapped[str | None] = mapped_column(String(128))


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("model_id", "version"),
        CheckConstraint(STAGES_SQL, name="stage"),
        CheckConstraint(TAGS_SQL, name="tags_json"),
        CheckConstraint("jsonb_typeof(metrics) IN ('object')", name="metrics_json"),
        CheckConstraint("jsonb_typeof(metadata) IN ('object')", name="metadata_json"),
        # Keyset pagination of one model's versions, newest first, and "latest in a stage".
        Index("ix_model_versions_model_seq", "model_id", "seq"),
        Index("ix_model_versions_model_stage_seq", "model_id", "stage", "seq"),
        # The database itself refuses a second production version of a model, checked as each
        # statement ends: a transition archives one and promotes another in one statement.
        ExcludeConstraint(
            ("model_id", "="),
            name="ex_model_versions_one_production",
            using="btree",
            where=text("stage = 'production'"),
            deferrable=True,
            initially="IMMEDIATE",
        ),
    )

    # Unique by its identity; indexed only after the model's id (migration 0007 says why).
    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    id: Mapped[UUID] = mapped_column(primary_key=True)
    model_id: Mapped[UUID] = mapped_column(ForeignKey(RegisteredModel.id, ondelete="CASCADE"))
    version: Mapped[str] = mapped_column(String(128))
    description: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str] = mapped_column(String(16), server_default="none")
    run_id: Mapped[str | None] = mapped_column(String(255))
    artifact_version_id: Mapped[UUID | None]
    artifact_uri: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, float]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    tags: Mapped[dict[str, str] | list[str]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    meta: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB, server_default=text("'{}'::jsonb")
    )
    approved_by: Mapped[str | None] = mapped_column(String(255))
    approved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class VersionCount(Base):
    """How many versions each model has in each stage, so a list's `total` costs one index
    lookup at any size. A row per stage from the model's registration on; moved by the same
    statement that creates, moves or deletes a version (store.py; migration 0004)."""

    __tablename__ = "version_counts"

    model_id: Mapped[UUID] = mapped_column(
        ForeignKey(RegisteredModel.id, ondelete="CASCADE"), primary_key=True
    )
    stage: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class ModelVersionTransition(Base):
    __tablename__ = "model_version_transitions"
    __table_args__ = (Index("ix_model_version_transitions_version_seq", "version_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))  # as a version's
    id: Mapped[UUID] = mapped_column(primary_key=True)
    version_id: Mapped[UUID] = mapped_column(ForeignKey(ModelVersion.id, ondelete="CASCADE"))
    model_id: Mapped[UUID]
    from_stage: Mapped[str] = mapped_column(String(16))
    to_stage: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    transitioned_by: Mapped[str] = mapped_column(String(255))
    transitioned_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class VersionDeployment(Base):
    """Where a version serves, as the serving service's deployment events last said: one row
    per deployment, `changed_at` the time of the event that set its state (a late, older event
    changes nothing). Ids of the serving service's entities are plain UUIDs."""

    __tablename__ = "version_deployments"
    __table_args__ = (
        Index(
            "ix_version_deployments_model_unretired",
            "model_id",
            postgresql_where=text("state <> 'retired'"),
        ),
    )

    deployment_id: Mapped[UUID] = mapped_column(primary_key=True)
    model_id: Mapped[UUID]
    version_id: Mapped[UUID]
    endpoint_id: Mapped[UUID]
    endpoint_name: Mapped[str] = mapped_column(String(63))
    env: Mapped[str] = mapped_column(String(8))
    serving_framework: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PromotionPolicy(Base):
    """The rules a move to production follows in a project (`model_id` null) or, overriding
    the project's as a whole, for one model. No row: no rule (migration 0011)."""

    __tablename__ = "promotion_policies"
    __table_args__ = (
        CheckConstraint(
            f"approvals_required BETWEEN 0 AND {MAX_APPROVALS}", name="approvals_required"
        ),
        Index(
            "uq_promotion_policies_project",
            "project_id",
            unique=True,
            postgresql_where=text("model_id IS NULL"),
        ),
        Index(
            "uq_promotion_policies_model",
            "model_id",
            unique=True,
            postgresql_where=text("model_id IS NOT NULL"),
        ),
    )

    id: Mapped[UUID] = mapped_column(primary_key=True)
    project_id: Mapped[UUID]
    model_id: Mapped[UUID | None] = mapped_column(
        ForeignKey(RegisteredModel.id, ondelete="CASCADE")
    )
    require_staging: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    approvals_required: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    forbid_author_approval: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    # As `domain.MetricGate` writes it, e.g. `auc >= 0.9 and loss < 0.2`.
    metric_gate: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


REQUEST_STATUSES_SQL = "status IN ('pending', 'approved', 'rejected', 'withdrawn', 'superseded')"


class PromotionRequest(Base):
    """A move to production waiting for approvals; closed when it moves, is rejected or
    withdrawn, or is superseded by its version's move to archived or none. One pending request
    per version at most."""

    __tablename__ = "promotion_requests"
    __table_args__ = (
        CheckConstraint(REQUEST_STATUSES_SQL, name="status"),
        Index(
            "uq_promotion_requests_pending_version",
            "version_id",
            unique=True,
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_promotion_requests_project_status_seq", "project_id", "status", "seq"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, Identity(always=True))
    id: Mapped[UUID] = mapped_column(primary_key=True)
    version_id: Mapped[UUID] = mapped_column(ForeignKey(ModelVersion.id, ondelete="CASCADE"))
    model_id: Mapped[UUID]
    project_id: Mapped[UUID]
    to_stage: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str | None] = mapped_column(Text)
    # As the policy said when the request was made.
    approvals_required: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    requested_by: Mapped[str] = mapped_column(String(255))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    closed_by: Mapped[str | None] = mapped_column(String(255))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(Text)


class PromotionApproval(Base):
    """One approver's approval of a request: one each (the key), so approvers are distinct."""

    __tablename__ = "promotion_approvals"
    __table_args__ = (PrimaryKeyConstraint("request_id", "approver"),)

    request_id: Mapped[UUID] = mapped_column(ForeignKey(PromotionRequest.id, ondelete="CASCADE"))
    approver: Mapped[str] = mapped_column(String(255))
    comment: Mapped[str | None] = mapped_column(Text)
    approved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


metadata = Base.metadata
