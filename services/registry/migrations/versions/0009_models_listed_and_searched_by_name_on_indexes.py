"""Models are listed in name order (`GET /models`, `/models/summary`) and searched by a
substring of their name (`?name=`, `ILIKE '%…%'`); without a project to narrow them, both
read and sorted every model. A b-tree on (name, id) hands out a page of every project's models
in order, and a trigram GIN index (pg_trgm, an extension Postgres ships and lets a database
owner create) finds the models whose names hold the substring.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

SCHEMA = "registry"

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_registered_models_name_id", "registered_models", ["name", "id"], schema=SCHEMA
    )
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        "ix_registered_models_name_trgm",
        "registered_models",
        ["name"],
        schema=SCHEMA,
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
    )


def downgrade() -> None:
    # The extension stays: other schemas of the database may use it.
    op.drop_index("ix_registered_models_name_trgm", table_name="registered_models", schema=SCHEMA)
    op.drop_index("ix_registered_models_name_id", table_name="registered_models", schema=SCHEMA)
