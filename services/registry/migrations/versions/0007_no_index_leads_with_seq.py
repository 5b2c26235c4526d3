"""Versions and transitions are ordered by `seq` only within their model or version: the
unique constraints on `seq` alone go (the identity column already makes each value unique).

A generic plan that takes the index on `seq` alone walks every model's versions newest first
to find one model's; the indexes on (model_id, seq), (model_id, stage, seq) and
(version_id, seq) are the ones a page, a latest-in-stage and a history need.

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

from alembic import op

SCHEMA = "registry"

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SEQ_CONSTRAINTS = {
    "model_versions": "uq_model_versions_seq",
    "model_version_transitions": "uq_model_version_transitions_seq",
}


def upgrade() -> None:
    for table, constraint in _SEQ_CONSTRAINTS.items():
        op.drop_constraint(constraint, table, schema=SCHEMA, type_="unique")


def downgrade() -> None:
    for table, constraint in _SEQ_CONSTRAINTS.items():
        op.create_unique_constraint(constraint, table, ["seq"], schema=SCHEMA)
