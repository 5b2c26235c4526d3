"""The dataset versions the datasets service's events announced, so a job naming one that is
unknown or not verified is refused.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

SCHEMA = "jobs"

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_version_id", sa.Uuid(), nullable=False),
        sa.Column("dataset_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "state IN ('created', 'verified', 'failed')", name=op.f("ck_dataset_versions_state")
        ),
        sa.PrimaryKeyConstraint("dataset_version_id", name=op.f("pk_dataset_versions")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("dataset_versions", schema=SCHEMA)
