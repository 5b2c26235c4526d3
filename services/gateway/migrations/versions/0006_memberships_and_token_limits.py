"""Per-project roles: memberships (project, subject, role); a token's platform role becomes
optional and a token may be limited to projects.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "gateway"


def upgrade() -> None:
    op.alter_column("api_tokens", "role", nullable=True, schema=SCHEMA)
    op.add_column(
        "api_tokens", sa.Column("project_ids", postgresql.ARRAY(sa.Uuid())), schema=SCHEMA
    )
    op.create_table(
        "memberships",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.PrimaryKeyConstraint("project_id", "subject", name=op.f("pk_memberships")),
        sa.ForeignKeyConstraint(
            ["project_id"],
            [f"{SCHEMA}.projects.id"],
            ondelete="CASCADE",
            name=op.f("fk_memberships_project_id_projects"),
        ),
        sa.CheckConstraint(
            "role IN ('viewer', 'editor', 'approver', 'admin')", name=op.f("ck_memberships_role")
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_memberships_subject", "memberships", ["subject"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("memberships", schema=SCHEMA)
    op.execute(f"DELETE FROM {SCHEMA}.api_tokens WHERE role IS NULL")
    op.drop_column("api_tokens", "project_ids", schema=SCHEMA)
    op.alter_column("api_tokens", "role", nullable=False, schema=SCHEMA)
