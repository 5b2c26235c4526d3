"""IntegrationConfig: which backend serves each concern in each env.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "gateway"


def upgrade() -> None:
    op.create_table(
        "integration_configs",
        sa.Column("env", sa.String(8), nullable=False),
        sa.Column("concern", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column(
            "settings", postgresql.JSONB(), nullable=False, server_default=sa.text("'{}'::jsonb")
        ),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("env", "concern", name=op.f("pk_integration_configs")),
        sa.CheckConstraint(
            "env IN ('dev', 'stg', 'prod')", name=op.f("ck_integration_configs_env")
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("integration_configs", schema=SCHEMA)
