"""The outbox relay is handed each commit's events; the NOTIFY trigger goes.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

from shared.migrations import drop_outbox_notify, restore_outbox_notify

SCHEMA = "jobs"

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    drop_outbox_notify(SCHEMA)


def downgrade() -> None:
    restore_outbox_notify(SCHEMA)
