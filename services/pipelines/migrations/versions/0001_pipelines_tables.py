"""The pipelines service's tables: pipelines, their definitions, runs and their stages, and the
IntegrationConfig rows choosing each env's orchestrator (the outbox and inbox are made by
`shared/messaging_migrations`).

Revision ID: 0001
Revises:
Create Date: 2026-12-07 02:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

SCHEMA = "pipelines"

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column]:
    return [
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
    ]


def upgrade() -> None:
    op.create_table(
        "pipelines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines")),
        sa.UniqueConstraint("project_id", "name", name=op.f("uq_pipelines_project_id_name")),
        schema=SCHEMA,
    )
    op.create_table(
        "pipeline_definitions",
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            [f"{SCHEMA}.pipelines.id"],
            ondelete="CASCADE",
            name=op.f("fk_pipeline_definitions_pipeline_id_pipelines"),
        ),
        sa.PrimaryKeyConstraint("pipeline_id", "version", name=op.f("pk_pipeline_definitions")),
        schema=SCHEMA,
    )
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_name", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("env", sa.String(length=8), nullable=False),
        sa.Column("definition_version", sa.Integer(), nullable=False),
        sa.Column("pipeline_definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("orchestration_system", sa.String(length=32), nullable=False),
        sa.Column("workflow_id", sa.String(length=255), nullable=False),
        sa.Column("workflow_namespace", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_stage", sa.String(length=255), nullable=True),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("max_retries", sa.Integer(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_by", sa.String(length=255), nullable=False),
        *_timestamps(),
        sa.CheckConstraint("env IN ('dev', 'stg', 'prod')", name=op.f("ck_pipeline_runs_env")),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            [f"{SCHEMA}.pipelines.id"],
            ondelete="CASCADE",
            name=op.f("fk_pipeline_runs_pipeline_id_pipelines"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipeline_runs")),
        sa.UniqueConstraint(
            "orchestration_system",
            "workflow_id",
            "workflow_namespace",
            name=op.f("uq_pipeline_runs_orchestration_system_workflow_id_workflow_namespace"),
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_pipeline_runs_pipeline_created",
        "pipeline_runs",
        ["pipeline_id", "created_at"],
        schema=SCHEMA,
    )
    op.create_table(
        "pipeline_run_stages",
        sa.Column("run_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("failures", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=True),
        sa.Column(
            "outputs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            [f"{SCHEMA}.pipeline_runs.id"],
            ondelete="CASCADE",
            name=op.f("fk_pipeline_run_stages_run_id_pipeline_runs"),
        ),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_pipeline_run_stages")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_pipeline_run_stages_deadline",
        "pipeline_run_stages",
        ["deadline"],
        schema=SCHEMA,
        postgresql_where=sa.text("deadline IS NOT NULL"),
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
    op.drop_table("pipeline_run_stages", schema=SCHEMA)
    op.drop_table("pipeline_runs", schema=SCHEMA)
    op.drop_table("pipeline_definitions", schema=SCHEMA)
    op.drop_table("pipelines", schema=SCHEMA)
