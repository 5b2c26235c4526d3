"""The relay removes an outbox row once JetStream acked its event; published rows go.

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from shared.migrations import remove_published_outbox_rows, restore_outbox_published_at

SCHEMA = "registry"

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    remove_published_outbox_rows(SCHEMA)


def downgrade() -> None:
    restore_outbox_published_at(SCHEMA)
