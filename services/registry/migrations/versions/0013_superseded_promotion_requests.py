"""A promotion request is `superseded` when its version is archived or moved back to none while
it waits.

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

from alembic import op

SCHEMA = "registry"

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = "ck_promotion_requests_status"


def _statuses(sql: str) -> None:
    op.drop_constraint(op.f(STATUS), "promotion_requests", schema=SCHEMA, type_="check")
    op.create_check_constraint(op.f(STATUS), "promotion_requests", sql, schema=SCHEMA)


def upgrade() -> None:
    _statuses("status IN ('pending', 'approved', 'rejected', 'withdrawn', 'superseded')")


def downgrade() -> None:
    op.execute(
        f"UPDATE {SCHEMA}.promotion_requests SET status = 'withdrawn' WHERE status = 'superseded'"
    )
    _statuses("status IN ('pending', 'approved', 'rejected', 'withdrawn')")
