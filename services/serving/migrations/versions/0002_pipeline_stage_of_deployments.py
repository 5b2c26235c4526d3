"""The pipeline stage attempt that asked for a deployment, named in its events.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "serving_deployments",
        sa.Column("pipeline_run_id", sa.Uuid(), nullable=True),
        schema="serving",
    )
    op.add_column(
        "serving_deployments",
        sa.Column("pipeline_stage", sa.String(length=255), nullable=True),
        schema="serving",
    )
    op.add_column(
        "serving_deployments",
        sa.Column("pipeline_attempt", sa.Integer(), nullable=True),
        schema="serving",
    )


def downgrade() -> None:
    for column in ("pipeline_attempt", "pipeline_stage", "pipeline_run_id"):
        op.drop_column("serving_deployments", column, schema="serving")
