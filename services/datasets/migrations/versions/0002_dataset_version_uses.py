"""The jobs that used each dataset version, learnt from the jobs service's events.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07 03:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_version_uses",
        sa.Column("dataset_version_id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("job_name", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("job_status", sa.String(length=16), nullable=False),
        sa.Column(
            "first_seen_at",
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
        sa.ForeignKeyConstraint(
            ["dataset_version_id"],
            ["datasets.dataset_versions.id"],
            name=op.f("fk_dataset_version_uses_dataset_version_id_dataset_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "dataset_version_id", "job_id", name=op.f("pk_dataset_version_uses")
        ),
        schema="datasets",
    )
    op.create_index(
        "ix_dataset_version_uses_job",
        "dataset_version_uses",
        ["job_id"],
        unique=False,
        schema="datasets",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_dataset_version_uses_job", table_name="dataset_version_uses", schema="datasets"
    )
    op.drop_table("dataset_version_uses", schema="datasets")
