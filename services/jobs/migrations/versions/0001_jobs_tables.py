"""The jobs service's tables: GPU type options, training jobs, experiment runs, outbox, inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 11:24:02.205269
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from shared.migrations import create_messaging_tables, drop_messaging_tables

SCHEMA = "jobs"

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_messaging_tables(SCHEMA)
    op.create_table(
        "gpu_type_options",
        sa.Column("env", sa.String(length=8), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("node_label", sa.String(length=255), nullable=True),
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
        sa.CheckConstraint("env IN ('dev', 'stg', 'prod')", name=op.f("ck_gpu_type_options_env")),
        sa.PrimaryKeyConstraint("env", "id", name=op.f("pk_gpu_type_options")),
        schema="jobs",
    )
    op.create_table(
        "training_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("env", sa.String(length=8), nullable=False),
        sa.Column("job_type", sa.String(length=16), nullable=False),
        sa.Column("command", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("working_dir", sa.Text(), nullable=True),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("use_gpu", sa.Boolean(), nullable=False),
        sa.Column(
            "resources",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "dataset_version_ids",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("register_model", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "violations",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("executor", sa.String(length=32), nullable=True),
        sa.Column("handle", sa.Text(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
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
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("env IN ('dev', 'stg', 'prod')", name=op.f("ck_training_jobs_env")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_training_jobs")),
        schema="jobs",
    )
    op.create_index(
        "ix_training_jobs_project_created",
        "training_jobs",
        ["project_id", "created_at"],
        unique=False,
        schema="jobs",
    )
    op.create_index(
        "ix_training_jobs_status", "training_jobs", ["status"], unique=False, schema="jobs"
    )
    op.create_table(
        "experiment_runs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("tracking_system", sa.String(length=32), nullable=False),
        sa.Column("tracking_run_id", sa.String(length=255), nullable=False),
        sa.Column("experiment_name", sa.String(length=255), nullable=False),
        sa.Column("run_name", sa.String(length=255), nullable=False),
        sa.Column(
            "parameters",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "artifact_uris",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "start_time",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["jobs.training_jobs.id"],
            name=op.f("fk_experiment_runs_job_id_training_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_experiment_runs")),
        sa.UniqueConstraint("job_id", name=op.f("uq_experiment_runs_job_id")),
        sa.UniqueConstraint(
            "tracking_system",
            "tracking_run_id",
            name=op.f("uq_experiment_runs_tracking_system_tracking_run_id"),
        ),
        schema="jobs",
    )


def downgrade() -> None:
    op.drop_table("experiment_runs", schema="jobs")
    op.drop_index("ix_training_jobs_status", table_name="training_jobs", schema="jobs")
    op.drop_index("ix_training_jobs_project_created", table_name="training_jobs", schema="jobs")
    op.drop_table("training_jobs", schema="jobs")
    op.drop_table("gpu_type_options", schema="jobs")
    drop_messaging_tables(SCHEMA)
