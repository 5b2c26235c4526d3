"""The registry's tables: models, versions, transitions, and its outbox and inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:55:03.994530
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.migrations import create_messaging_tables, drop_messaging_tables

SCHEMA = "registry"

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_messaging_tables(SCHEMA)
    op.create_table(
        "registered_models",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "tags",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version_counter", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registered_models")),
        sa.UniqueConstraint(
            "project_id", "name", name=op.f("uq_registered_models_project_id_name")
        ),
        schema="registry",
    )
    op.create_index(
        "ix_registered_models_tags",
        "registered_models",
        ["tags"],
        unique=False,
        schema="registry",
        postgresql_using="gin",
    )
    op.create_table(
        "model_versions",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("stage", sa.String(length=16), server_default="none", nullable=False),
        sa.Column("run_id", sa.String(length=255), nullable=True),
        sa.Column("artifact_version_id", sa.Uuid(), nullable=True),
        sa.Column("artifact_uri", sa.Text(), nullable=True),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("approved_by", sa.String(length=255), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "stage IN ('none', 'staging', 'production', 'archived')",
            name=op.f("ck_model_versions_stage"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["registry.registered_models.id"],
            name=op.f("fk_model_versions_model_id_registered_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "version", name=op.f("uq_model_versions_model_id_version")),
        sa.UniqueConstraint("seq", name=op.f("uq_model_versions_seq")),
        schema="registry",
    )
    op.create_index(
        "ix_model_versions_model_seq",
        "model_versions",
        ["model_id", "seq"],
        unique=False,
        schema="registry",
    )
    op.create_index(
        "ix_model_versions_model_stage_seq",
        "model_versions",
        ["model_id", "stage", "seq"],
        unique=False,
        schema="registry",
    )
    op.create_index(
        "uq_model_versions_one_production",
        "model_versions",
        ["model_id"],
        unique=True,
        schema="registry",
        postgresql_where=sa.text("stage = 'production'"),
    )
    op.create_table(
        "model_version_transitions",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("from_stage", sa.String(length=16), nullable=False),
        sa.Column("to_stage", sa.String(length=16), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("transitioned_by", sa.String(length=255), nullable=False),
        sa.Column(
            "transitioned_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["registry.model_versions.id"],
            name=op.f("fk_model_version_transitions_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_version_transitions")),
        sa.UniqueConstraint("seq", name=op.f("uq_model_version_transitions_seq")),
        schema="registry",
    )
    op.create_index(
        "ix_model_version_transitions_version_seq",
        "model_version_transitions",
        ["version_id", "seq"],
        unique=False,
        schema="registry",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_model_version_transitions_version_seq",
        table_name="model_version_transitions",
        schema="registry",
    )
    op.drop_table("model_version_transitions", schema="registry")
    op.drop_index(
        "uq_model_versions_one_production",
        table_name="model_versions",
        schema="registry",
        postgresql_where=sa.text("stage = 'production'"),
    )
    op.drop_index(
        "ix_model_versions_model_stage_seq", table_name="model_versions", schema="registry"
    )
    op.drop_index("ix_model_versions_model_seq", table_name="model_versions", schema="registry")
    op.drop_table("model_versions", schema="registry")
    op.drop_index(
        "ix_registered_models_tags",
        table_name="registered_models",
        schema="registry",
        postgresql_using="gin",
    )
    op.drop_table("registered_models", schema="registry")
    drop_messaging_tables(SCHEMA)
