"""The serving service's tables: endpoints, deployments, and its copies of other services' facts
(its outbox and inbox are shared/messaging_migrations').

Revision ID: 0001
Revises:
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
        "gpu_types",
        sa.Column("env", sa.String(length=8), nullable=False),
        sa.Column("id", sa.String(length=63), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("node_label", sa.String(length=255), nullable=True),
        sa.CheckConstraint("env IN ('dev', 'stg', 'prod')", name=op.f("ck_gpu_types_env")),
        sa.PrimaryKeyConstraint("env", "id", name=op.f("pk_gpu_types")),
        schema="serving",
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
        schema="serving",
    )
    op.create_table(
        "model_versions",
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("model_name", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("version_id", name=op.f("pk_model_versions")),
        schema="serving",
    )
    op.create_index(
        "ix_model_versions_model_stage",
        "model_versions",
        ["model_id", "stage"],
        unique=False,
        schema="serving",
    )
    op.create_table(
        "serving_endpoints",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("model_version_id", sa.Uuid(), nullable=True),
        sa.Column("follow_stage", sa.String(length=16), nullable=True),
        sa.Column("serving_framework", sa.String(length=16), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("env", sa.String(length=8), nullable=False),
        sa.Column("deployment_spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("live_deployment_id", sa.Uuid(), nullable=True),
        sa.Column("retired", sa.Boolean(), server_default=sa.text("false"), nullable=False),
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
        sa.CheckConstraint("env IN ('dev', 'stg', 'prod')", name=op.f("ck_serving_endpoints_env")),
        sa.CheckConstraint(
            "serving_framework IN ('ray_serve', 'kserve')",
            name=op.f("ck_serving_endpoints_serving_framework"),
        ),
        sa.CheckConstraint(
            "(model_version_id IS NULL) <> (follow_stage IS NULL)",
            name=op.f("ck_serving_endpoints_serves_one_of"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_serving_endpoints")),
        sa.UniqueConstraint(
            "project_id", "name", name=op.f("uq_serving_endpoints_project_id_name")
        ),
        schema="serving",
    )
    op.create_index(
        "ix_serving_endpoints_model_follow",
        "serving_endpoints",
        ["model_id", "follow_stage"],
        unique=False,
        schema="serving",
    )
    op.create_table(
        "serving_deployments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("model_version_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=True),
        sa.Column("model_uri", sa.Text(), nullable=False),
        sa.Column("serving_framework", sa.String(length=16), nullable=False),
        sa.Column("framework_resource_id", sa.String(length=63), nullable=False),
        sa.Column("framework_namespace", sa.String(length=63), nullable=False),
        sa.Column("replica_count", sa.Integer(), nullable=False),
        sa.Column("min_replicas", sa.Integer(), nullable=False),
        sa.Column("max_replicas", sa.Integer(), nullable=False),
        sa.Column(
            "autoscaling_metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "resource_requests",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "resource_limits",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("gpu_type", sa.String(length=63), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=True),
        sa.Column(
            "framework_status",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "retire_requested", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("unreachable_since", sa.DateTime(timezone=True), nullable=True),
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
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("healthy_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "serving_framework IN ('ray_serve', 'kserve')",
            name=op.f("ck_serving_deployments_serving_framework"),
        ),
        sa.CheckConstraint(
            "state IN ('created', 'deploying', 'healthy', 'degraded', 'failed', 'retired')",
            name=op.f("ck_serving_deployments_state"),
        ),
        sa.CheckConstraint(
            "max_replicas >= min_replicas", name=op.f("ck_serving_deployments_max_replicas")
        ),
        sa.CheckConstraint("min_replicas >= 0", name=op.f("ck_serving_deployments_min_replicas")),
        sa.CheckConstraint(
            "replica_count BETWEEN min_replicas AND max_replicas",
            name=op.f("ck_serving_deployments_replica_count"),
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["serving.serving_endpoints.id"],
            name=op.f("fk_serving_deployments_endpoint_id_serving_endpoints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_serving_deployments")),
        sa.UniqueConstraint(
            "serving_framework",
            "framework_resource_id",
            "framework_namespace",
            name="uq_serving_deployments_framework_resource",
        ),
        schema="serving",
    )
    op.create_index(
        "ix_serving_deployments_active",
        "serving_deployments",
        ["state"],
        unique=False,
        schema="serving",
        postgresql_where=sa.text("state <> 'retired'"),
    )
    op.create_index(
        "ix_serving_deployments_endpoint_created",
        "serving_deployments",
        ["endpoint_id", "created_at"],
        unique=False,
        schema="serving",
    )


def downgrade() -> None:
    op.drop_index(
        "ix_serving_deployments_endpoint_created",
        table_name="serving_deployments",
        schema="serving",
    )
    op.drop_index(
        "ix_serving_deployments_active",
        table_name="serving_deployments",
        schema="serving",
        postgresql_where=sa.text("state <> 'retired'"),
    )
    op.drop_table("serving_deployments", schema="serving")
    op.drop_index(
        "ix_serving_endpoints_model_follow", table_name="serving_endpoints", schema="serving"
    )
    op.drop_table("serving_endpoints", schema="serving")
    op.drop_index("ix_model_versions_model_stage", table_name="model_versions", schema="serving")
    op.drop_table("model_versions", schema="serving")
    op.drop_table("integration_configs", schema="serving")
    op.drop_table("gpu_types", schema="serving")
