"""The relay removes an outbox row once JetStream acked its event; published rows go.

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

from shared.migrations import remove_published_outbox_rows, restore_outbox_published_at

SCHEMA = "gateway"

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    remove_published_outbox_rows(SCHEMA)


def downgrade() -> None:
    restore_outbox_published_at(SCHEMA)
