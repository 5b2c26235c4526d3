"""Jobs remember the pipeline stage attempt that asked for them; the IntegrationConfig rows
(from the gateway's events) that choose each env's executor.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

SCHEMA = "jobs"

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "training_jobs", sa.Column("pipeline_run_id", sa.Uuid(), nullable=True), schema=SCHEMA
    )
    op.add_column(
        "training_jobs",
        sa.Column("pipeline_stage", sa.String(length=255), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "training_jobs", sa.Column("pipeline_attempt", sa.Integer(), nullable=True), schema=SCHEMA
    )
    op.create_unique_constraint(
        op.f("uq_training_jobs_pipeline_stage_attempt"),
        "training_jobs",
        ["pipeline_run_id", "pipeline_stage", "pipeline_attempt"],
        schema=SCHEMA,
    )
    op.create_table(
        "integration_configs",
        sa.Column("env", sa.String(length=8), nullable=False),
        sa.Column("concern", sa.String(length=64), nullable=False),
        sa.Column("backend", sa.String(length=64), nullable=False),
        sa.Column(
            "settings",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("changed_by", sa.String(length=255), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "env IN ('dev', 'stg', 'prod')", name=op.f("ck_integration_configs_env")
        ),
        sa.PrimaryKeyConstraint("env", "concern", name=op.f("pk_integration_configs")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("integration_configs", schema=SCHEMA)
    op.drop_constraint(
        "uq_training_jobs_pipeline_stage_attempt", "training_jobs", schema=SCHEMA, type_="unique"
    )
    op.drop_column("training_jobs", "pipeline_attempt", schema=SCHEMA)
    op.drop_column("training_jobs", "pipeline_stage", schema=SCHEMA)
    op.drop_column("training_jobs", "pipeline_run_id", schema=SCHEMA)
