"""One production version per model, checked when each statement ends.

A transition is one statement (see `store._TRANSITION`): archiving the version that served
production and promoting the next are two rows of one UPDATE. A unique index checks each row
as it is written, so it could see two production versions between the rows; a deferrable
exclusion constraint checks at the end of the statement (INITIALLY IMMEDIATE), and still
refuses a second production version of a model in any committed state.

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

SCHEMA = "registry"

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(f"""
        ALTER TABLE {SCHEMA}.model_versions ADD CONSTRAINT ex_model_versions_one_production
        EXCLUDE USING btree (model_id WITH =) WHERE (stage = 'production')
        DEFERRABLE INITIALLY IMMEDIATE
    """)
    op.drop_index("uq_model_versions_one_production", table_name="model_versions", schema=SCHEMA)


def downgrade() -> None:
    op.create_index(
        "uq_model_versions_one_production",
        "model_versions",
        ["model_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("stage = 'production'"),
    )
    op.drop_constraint("ex_model_versions_one_production", "model_versions", schema=SCHEMA)
