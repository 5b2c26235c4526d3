"""The outbox keeps how often JetStream refused an event and why; the relay pauses before the
next attempt, longer each time.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from shared.migrations import add_outbox_retries, drop_outbox_retries

SCHEMA = "jobs"

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_retries(SCHEMA)


def downgrade() -> None:
    drop_outbox_retries(SCHEMA)
