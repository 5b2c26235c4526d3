"""Promotion policies (per project, and per model overriding it), the moves to production
waiting for approvals, and the approvals given. With no policy row nothing changes: every rule
is off until a project turns it on.

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

SCHEMA = "registry"

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "promotion_policies",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column(
            "model_id",
            sa.Uuid(),
            sa.ForeignKey(
                f"{SCHEMA}.registered_models.id",
                ondelete="CASCADE",
                name=op.f("fk_promotion_policies_model_id_registered_models"),
            ),
        ),
        sa.Column("require_staging", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("approvals_required", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "forbid_author_approval", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("metric_gate", sa.Text()),
        sa.Column("updated_by", sa.String(255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint(
            "approvals_required BETWEEN 0 AND 10",
            name=op.f("ck_promotion_policies_approvals_required"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_policies")),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_promotion_policies_project",
        "promotion_policies",
        ["project_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("model_id IS NULL"),
    )
    op.create_index(
        "uq_promotion_policies_model",
        "promotion_policies",
        ["model_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("model_id IS NOT NULL"),
    )

    op.create_table(
        "promotion_requests",
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "version_id",
            sa.Uuid(),
            sa.ForeignKey(
                f"{SCHEMA}.model_versions.id",
                ondelete="CASCADE",
                name=op.f("fk_promotion_requests_version_id_model_versions"),
            ),
            nullable=False,
        ),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("to_stage", sa.String(16), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("approvals_required", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), server_default="pending", nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.String(255)),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("reason", sa.Text()),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected', 'withdrawn')",
            name=op.f("ck_promotion_requests_status"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotion_requests")),
        schema=SCHEMA,
    )
    op.create_index(
        "uq_promotion_requests_pending_version",
        "promotion_requests",
        ["version_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_promotion_requests_project_status_seq",
        "promotion_requests",
        ["project_id", "status", "seq"],
        schema=SCHEMA,
    )

    op.create_table(
        "promotion_approvals",
        sa.Column(
            "request_id",
            sa.Uuid(),
            sa.ForeignKey(
                f"{SCHEMA}.promotion_requests.id",
                ondelete="CASCADE",
                name=op.f("fk_promotion_approvals_request_id_promotion_requests"),
            ),
            nullable=False,
        ),
        sa.Column("approver", sa.String(255), nullable=False),
        sa.Column("comment", sa.Text()),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "approver", name=op.f("pk_promotion_approvals")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("promotion_approvals", schema=SCHEMA)
    op.drop_table("promotion_requests", schema=SCHEMA)
    op.drop_table("promotion_policies", schema=SCHEMA)
