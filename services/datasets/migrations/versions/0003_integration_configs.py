"""The gateway's IntegrationConfig rows that choose an env's DVC remote, from its events.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

SCHEMA = "datasets"

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
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
