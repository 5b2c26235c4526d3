"""The registry's tables, all in schema `registry`."""

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, ExcludeConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
        Index("ix_registered_models_name_trgm", "name", postgresql_using="gin",
              postgresql_ops={"name": "gin_trgm_ops"}),
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
        Index("ix_version_deployments_model_unretired", "model_id",
              postgresql_where=text("state <> 'retired'")),
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


metadata = Base.metadata
