"""The datasets service's tables: datasets and their versions (the outbox and inbox are made by
`shared/messaging_migrations`).

Revision ID: 0001
Revises:
Create Date: 2026-12-07 03:23:17
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "tags",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("active_version_id", sa.Uuid(), nullable=True),
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
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_datasets_project_id_name")),
        schema="datasets",
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("versioning_system", sa.String(length=16), nullable=False),
        sa.Column("version_id", sa.String(length=64), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("parent_version_id", sa.String(length=64), nullable=True),
        sa.Column("version_tag", sa.String(length=128), nullable=True),
        sa.Column("checksum", sa.String(length=80), nullable=False),
        sa.Column("storage_uri", sa.Text(), nullable=False),
        sa.Column(
            "diff_summary",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("file_count", sa.Integer(), nullable=False),
        sa.Column("total_size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("bytes_added", sa.BigInteger(), nullable=False),
        sa.Column("compression_ratio", sa.Double(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column(
            "mismatched_files",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
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
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('created', 'verified', 'active', 'failed')",
            name=op.f("ck_dataset_versions_state"),
        ),
        sa.CheckConstraint(
            "versioning_system IN ('dvc')", name=op.f("ck_dataset_versions_versioning_system")
        ),
        sa.CheckConstraint(
            "file_count >= 0 AND total_size_bytes >= 0 AND bytes_added >= 0",
            name=op.f("ck_dataset_versions_sizes"),
        ),
        sa.CheckConstraint(
            "parent_id IS NULL OR parent_id <> id", name=op.f("ck_dataset_versions_not_own_parent")
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.datasets.id"],
            name=op.f("fk_dataset_versions_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["datasets.dataset_versions.id"],
            name=op.f("fk_dataset_versions_parent_id_dataset_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_versions")),
        sa.UniqueConstraint("dataset_id", "version_tag", name="uq_dataset_versions_tag"),
        sa.UniqueConstraint(
            "dataset_id",
            "versioning_system",
            "version_id",
            name="uq_dataset_versions_system_version",
        ),
        schema="datasets",
    )
    op.create_index(
        "ix_dataset_versions_dataset_created",
        "dataset_versions",
        ["dataset_id", "created_at"],
        unique=False,
        schema="datasets",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_dataset_versions_dataset_created", table_name="dataset_versions", schema="datasets"
    )
    op.drop_table("dataset_versions", schema="datasets")
    op.drop_table("datasets", schema="datasets")
