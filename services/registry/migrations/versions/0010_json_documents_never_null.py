"""Tags, metrics and a version's metadata are JSON documents, never JSON null: an update that
set one to null (refused since, 422) left rows that failed every list of their models. Such
values become empty (`[]` for tags, the default since they may be a list; `{}` otherwise),
and check constraints keep null, and any other form, out.

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

SCHEMA = "registry"

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# table, column, its empty value, the JSON types it may hold
_DOCUMENTS = [
    ("registered_models", "tags", "[]", ("array", "object")),
    ("model_versions", "tags", "[]", ("array", "object")),
    ("model_versions", "metrics", "{}", ("object",)),
    ("model_versions", "metadata", "{}", ("object",)),
]


def upgrade() -> None:
    for table, column, empty, types in _DOCUMENTS:
        op.execute(
            f"UPDATE {SCHEMA}.{table} SET {column} = '{empty}'::jsonb"
            f" WHERE jsonb_typeof({column}) = 'null'"
        )
        allowed = ", ".join(f"'{t}'" for t in types)
        op.create_check_constraint(
            op.f(f"ck_{table}_{column}_json"),
            table,
            f"jsonb_typeof({column}) IN ({allowed})",
            schema=SCHEMA,
        )


def downgrade() -> None:
    for table, column, _, _ in _DOCUMENTS:
        op.drop_constraint(op.f(f"ck_{table}_{column}_json"), table, schema=SCHEMA, type_="check")
