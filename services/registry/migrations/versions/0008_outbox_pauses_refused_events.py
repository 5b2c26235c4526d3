"""The outbox keeps how often JetStream refused an event and why; the relay pauses before the
next attempt, longer each time.

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

from shared.migrations import add_outbox_retries, drop_outbox_retries

SCHEMA = "registry"

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_retries(SCHEMA)


def downgrade() -> None:
    drop_outbox_retries(SCHEMA)
