"""A job's python_env; when a supervisor claimed a job to start it; a run's logged artifacts.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

SCHEMA = "jobs"

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("training_jobs", sa.Column("python_env", sa.Text(), nullable=True), schema=SCHEMA)
    op.add_column(
        "training_jobs",
        sa.Column("start_claimed_at", sa.DateTime(timezone=True), nullable=True),
        schema=SCHEMA,
    )
    op.add_column(
        "experiment_runs",
        sa.Column(
            "artifacts",
            postgresql.JSONB(),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("experiment_runs", "artifacts", schema=SCHEMA)
    op.drop_column("training_jobs", "start_claimed_at", schema=SCHEMA)
    op.drop_column("training_jobs", "python_env", schema=SCHEMA)
