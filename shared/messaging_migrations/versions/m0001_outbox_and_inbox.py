"""The outbox and inbox as `shared.outbox` and `shared.inbox` declare them, unless the
service's own history made them already (the registry, jobs and the gateway did).

Revision ID: m0001
Revises:
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.db import schema_metadata

revision: str = "m0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    schema = op.get_context().version_table_schema
    if schema is None:
        raise RuntimeError("the messaging migrations run in a service's schema")
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names(schema=schema))
    for table in schema_metadata(schema).tables.values():
        if table.name not in existing:
            table.create(bind)


def downgrade() -> None:
    """The tables stay: the service's own history may have made them, and its rows need them."""
