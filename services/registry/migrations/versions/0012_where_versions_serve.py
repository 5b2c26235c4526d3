"""Where each version serves: the serving service's deployment events, one row per deployment.

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

SCHEMA = "registry"

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "version_deployments",
        sa.Column("deployment_id", sa.Uuid(), nullable=False),
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_id", sa.Uuid(), nullable=False),
        sa.Column("endpoint_name", sa.String(63), nullable=False),
        sa.Column("env", sa.String(8), nullable=False),
        sa.Column("serving_framework", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("pk_version_deployments")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_version_deployments_model_unretired",
        "version_deployments",
        ["model_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("state <> 'retired'"),
    )


def downgrade() -> None:
    op.drop_table("version_deployments", schema=SCHEMA)
