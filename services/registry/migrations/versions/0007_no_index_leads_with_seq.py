"""Versions and transitions are ordered by `seq` only within their model or version: the
unique constraints on `seq` alone go (the identity column already makes each value unique).

With the registry's statements planned once (`plan_cache_mode = force_generic_plan`), the
plans for a page of one model's versions, its latest version in a stage and a version's
history assumed every model (or version) has an equal share of the rows and walked that
index newest first, filtering on the model: behind a model with a million newer versions, a
page of a 10 000-version model read all million rows (180 ms instead of 1 ms). The indexes
on (model_id, seq), (model_id, stage, seq) and (version_id, seq) are the ones these
statements need.

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
