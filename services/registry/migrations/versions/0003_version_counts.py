"""Version counts per model and stage, kept by statement triggers on model_versions (until
0004, which has the registry's own statements keep them).

A list's `total` was a count(*) over the model's versions on every page: 115 ms at a million
versions. The triggers see each statement's rows once (transition tables), so a bulk insert
costs one upsert per (model, stage), and a single version one.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

SCHEMA = "registry"

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADD = f"""
    INSERT INTO {SCHEMA}.version_counts AS c (model_id, stage, n)
    SELECT model_id, stage, count(*) FROM {{rows}} GROUP BY model_id, stage
    ON CONFLICT (model_id, stage) DO UPDATE SET n = c.n + excluded.n;
"""
_SUBTRACT = f"""
    UPDATE {SCHEMA}.version_counts AS c SET n = c.n - r.k
    FROM (SELECT model_id, stage, count(*) AS k FROM {{rows}} GROUP BY model_id, stage) AS r
    WHERE c.model_id = r.model_id AND c.stage = r.stage;
"""
# Rows whose stage an UPDATE changed, as they were and as they are.
_MOVED_FROM = "(SELECT b.* FROM before b JOIN after a USING (id) WHERE a.stage <> b.stage) AS m"
_MOVED_TO = "(SELECT a.* FROM after a JOIN before b USING (id) WHERE a.stage <> b.stage) AS m"

# (name, event, REFERENCING clause, body)
_TRIGGERS = [
    ("inserted", "INSERT", "NEW TABLE AS added", _ADD.format(rows="added")),
    ("deleted", "DELETE", "OLD TABLE AS removed", _SUBTRACT.format(rows="removed")),
    (
        "updated",
        "UPDATE",
        "OLD TABLE AS before NEW TABLE AS after",
        _SUBTRACT.format(rows=_MOVED_FROM) + _ADD.format(rows=_MOVED_TO),
    ),
]


def upgrade() -> None:
    op.create_table(
        "version_counts",
        sa.Column("model_id", sa.Uuid(), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            [f"{SCHEMA}.registered_models.id"],
            name=op.f("fk_version_counts_model_id_registered_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "stage", name=op.f("pk_version_counts")),
        schema=SCHEMA,
    )
    create_triggers()
    op.execute(_ADD.format(rows=f"{SCHEMA}.model_versions"))


def downgrade() -> None:
    drop_triggers()
    op.drop_table("version_counts", schema=SCHEMA)


def create_triggers() -> None:
    for name, event, referencing, body in _TRIGGERS:
        op.execute(f"""
            CREATE FUNCTION {SCHEMA}.version_counts_{name}() RETURNS trigger
            LANGUAGE plpgsql AS $$ BEGIN {body} RETURN NULL; END $$
        """)
        op.execute(f"""
            CREATE TRIGGER version_counts_{name} AFTER {event} ON {SCHEMA}.model_versions
            REFERENCING {referencing} FOR EACH STATEMENT
            EXECUTE FUNCTION {SCHEMA}.version_counts_{name}()
        """)


def drop_triggers() -> None:
    """Also called by 0004, which replaced the triggers."""
    for name, _, _, _ in _TRIGGERS:
        op.execute(f"DROP FUNCTION {SCHEMA}.version_counts_{name}() CASCADE")
