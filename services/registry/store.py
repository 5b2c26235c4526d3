"""The registry's queries. Nothing here commits but the unit of work's own statements: a
command that is one statement (creating a model, numbering a version) writes its event with it
and commits by itself (`UnitOfWork.fetchrow_writing_events`).

The hot paths (creating, reading, listing and moving versions, creating models) are SQL on the
transaction's asyncpg connection: a statement through SQLAlchemy costs twice the CPU. jsonb
parameters go as JSON text and come back decoded (the codec SQLAlchemy's dialect installs on
each pooled connection). The rest goes through the ORM session of the same transaction.
"""

import base64
import json
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Row,
    String,
    Uuid,
    and_,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.domain import ModelStage, StageChange
from services.registry.models import (
    SCHEMA,
    ModelVersion,
    PromotionApproval,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
    VersionCount,
    VersionDeployment,
    metadata,
)
from shared.db import UnitOfWork
from shared.events.registry import (
    ModelRegistered,
    ModelVersionApproved,
    ModelVersionCreated,
    ModelVersionTransitioned,
)
from shared.outbox import OUTBOX_TABLE, written_by_statement_sql
from shared.statements import Statement

Record = asyncpg.Record
MODELS = f"{SCHEMA}.registered_models"
VERSIONS = f"{SCHEMA}.model_versions"
# How many versions each model has in each stage: moved by the statement that moves versions.
COUNTS = f"{SCHEMA}.version_counts"
_STAGES = ", ".join(f"'{stage.value}'" for stage in ModelStage)
# A version as the API shows it; `metadata AS meta` keeps the ORM attribute's name.
VERSION_COLUMNS = """v.seq, v.id, v.model_id, v.version, v.description, v.stage, v.run_id,
    v.artifact_version_id, v.artifact_uri, v.metrics, v.tags, v.metadata AS meta, v.approved_by,
    v.approved_at, v.created_by, v.created_at, v.updated_at"""
MODEL_COLUMNS = "id, name, project_id, description, tags, created_by, created_at, updated_at"
OUTBOX = metadata.tables[f"{SCHEMA}.{OUTBOX_TABLE}"]


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # an integer past 64 bits: the standard library keeps it
        return json.dumps(value)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The `seq` a cursor names; None for one this API cannot have given out (nor a bigint)."""
    try:
        seq = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        return None
    return seq if -(2**63) <= seq < 2**63 else None


# The model, its counts and its event: one statement, one round trip.
_INSERT_MODEL = f"""
    WITH model AS (
        INSERT INTO {MODELS} (id, project_id, name, description, tags, created_by)
        VALUES ($1, $2, $3, $4, $5::jsonb, $6)
        ON CONFLICT ON CONSTRAINT uq_registered_models_project_id_name DO NOTHING
        RETURNING {MODEL_COLUMNS}
    ), counts AS (
        INSERT INTO {COUNTS} (model_id, stage, n) SELECT id, unnest(ARRAY[{_STAGES}]), 0 FROM model
    ), {written_by_statement_sql(OUTBOX, 7, "model")}
    SELECT * FROM model
"""


async def insert_model(
    uow: UnitOfWork, values: dict[str, Any], event: ModelRegistered
) -> Record | None:
    """The new model, committed with its event; None when its project already has a model of
    that name (then nothing was written)."""
    return await uow.fetchrow_writing_events(
        _INSERT_MODEL, values["id"], values["project_id"], values["name"],
        values["description"], _json(values["tags"]), values["created_by"],
        events=[(event, values["id"])],
    )  # fmt: skip


async def get_model(conn: asyncpg.Connection, model_id: UUID) -> Record | None:
    return await conn.fetchrow(f"SELECT {MODEL_COLUMNS} FROM {MODELS} WHERE id = $1", model_id)


async def project_of_model(conn: asyncpg.Connection, model_id: UUID) -> UUID | None:
    return await conn.fetchval(f"SELECT project_id FROM {MODELS} WHERE id = $1", model_id)


async def project_of_version(conn: asyncpg.Connection, version_id: UUID) -> UUID | None:
    return await conn.fetchval(
        f"SELECT m.project_id FROM {VERSIONS} v JOIN {MODELS} m ON m.id = v.model_id"
        " WHERE v.id = $1",
        version_id,
    )


async def lock_model(session: AsyncSession, model_id: UUID) -> RegisteredModel | None:
    """The model, row-locked: writes that must see its versions stand still are serialised."""
    stmt = select(RegisteredModel).where(RegisteredModel.id == model_id).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def find_models(
    session: AsyncSession,
    *,
    projects: Collection[UUID] | None,
    name: str | None,
    tags: Sequence[tuple[str, str | None]],
    limit: int,
    offset: int,
) -> tuple[Sequence[RegisteredModel], int]:
    """A page of the models in `projects` (None: every project) in name order, and how many match. Each of `tags` is a key, which
    a list of labels or an object's keys hold, or a key and value, which an object holds or a
    list as the label `key:value` (jsonb's `?` and `@>`, both served by the GIN index)."""
    conditions = []
    if projects is not None:
        conditions.append(RegisteredModel.project_id.in_(list(projects)))
    if name:
        pattern = "%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(RegisteredModel.name.ilike(pattern))
    for key, value in tags:
        if value is None:
            conditions.append(RegisteredModel.tags.has_key(key))
        else:
            conditions.append(or_(RegisteredModel.tags.contains({key: value}),
                                  RegisteredModel.tags.has_key(f"{key}:{value}")))  # fmt: skip
    items = await session.scalars(
        select(RegisteredModel)
        .where(*conditions)
        .order_by(RegisteredModel.name, RegisteredModel.id)
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(select(func.count()).select_from(RegisteredModel).where(*conditions))
    return items.all(), total or 0


async def model_name_taken(session: AsyncSession, project_id: UUID, name: str) -> bool:
    stmt = select(RegisteredModel.id).where(
        RegisteredModel.project_id == project_id, RegisteredModel.name == name
    )
    return (await session.scalar(stmt)) is not None


async def delete_model(conn: asyncpg.Connection, model_id: UUID) -> int:
    """Delete the model; its versions and their history go with it (ON DELETE CASCADE).
    Returns how many versions it had (the counts as they were before the delete)."""
    return await conn.fetchval(f"""
        WITH gone AS (DELETE FROM {MODELS} WHERE id = $1)
        SELECT coalesce(sum(n), 0)::bigint FROM {COUNTS} WHERE model_id = $1
    """, model_id)  # fmt: skip


# Creating a version is the registry's busiest write: the counter bump, the insert and the
# count of the version's stage are one statement (one round trip), and for a numbered version
# outside a transaction its event too.
_NUMBERED_VERSION = f"""
    WITH model AS (
        UPDATE {MODELS} SET version_counter = version_counter + 1, updated_at = now()
        WHERE id = $1
        RETURNING version_counter, name
    ), inserted AS (
        INSERT INTO {VERSIONS} AS v (
            id, model_id, version, stage, description, run_id, artifact_version_id, artifact_uri,
            metrics, tags, metadata, created_by
        )
        SELECT $2, $1, coalesce($3::text, model.version_counter::text), $4, $5, $6, $7, $8,
               $9::jsonb, $10::jsonb, $11::jsonb, $12
        FROM model
        ON CONFLICT (model_id, version) DO NOTHING
        RETURNING {VERSION_COLUMNS}, (SELECT name FROM model) AS model_name
    ), counted AS (
        UPDATE {COUNTS} c SET n = c.n + 1
        FROM inserted WHERE c.model_id = inserted.model_id AND c.stage = inserted.stage
    )"""
_INSERT_NUMBERED_VERSION = f"{_NUMBERED_VERSION} SELECT * FROM inserted"
# The event's model name and version label are the statement's to know.
_VERSION_FILL = {"model_name": "model_name", "version": "version"}
_INSERT_NUMBERED_VERSION_WITH_EVENT = f"""{_NUMBERED_VERSION},
    {written_by_statement_sql(OUTBOX, 13, "inserted", _VERSION_FILL)}
    SELECT * FROM inserted
"""


def _version_arguments(values: dict[str, Any]) -> tuple:
    return (
        values["model_id"], values["id"], values["version"], values["stage"],
        values["description"], values["run_id"], values["artifact_version_id"],
        values["artifact_uri"], _json(values["metrics"]), _json(values["tags"]),
        _json(values["metadata"]), values["created_by"],
    )  # fmt: skip


async def insert_numbered_version(
    conn: asyncpg.Connection, values: dict[str, Any]
) -> Record | None:
    """Bump the model's counter and `updated_at` (locking its row) and insert the version,
    labelled `values["version"]` or else the new number; the row carries `model_name`. None when
    the model does not exist or the label is taken (the bump is then kept: the row stays
    locked)."""
    return await conn.fetchrow(_INSERT_NUMBERED_VERSION, *_version_arguments(values))


async def insert_numbered_version_with_event(
    uow: UnitOfWork, values: dict[str, Any], event: ModelVersionCreated
) -> Record | None:
    """As `insert_numbered_version`, committed by itself with its event, whose `model_name`
    and `version` the statement fills in. None when nothing was written; a bump made then is
    kept (the number is taken by a label: the next try skips it anyway)."""
    return await uow.fetchrow_writing_events(
        _INSERT_NUMBERED_VERSION_WITH_EVENT, *_version_arguments(values),
        events=[(event, values["id"])], fill=_VERSION_FILL,
    )  # fmt: skip


async def version_exists(conn: asyncpg.Connection, version_id: UUID) -> bool:
    return await conn.fetchval(f"SELECT EXISTS (SELECT FROM {VERSIONS} WHERE id = $1)", version_id)


async def get_version_by_label(
    conn: asyncpg.Connection, model_id: UUID, label: str
) -> Record | None:
    return await conn.fetchrow(
        f"SELECT {VERSION_COLUMNS} FROM {VERSIONS} v WHERE v.model_id = $1 AND v.version = $2",
        model_id, label,
    )  # fmt: skip


async def lock_version_and_model(
    session: AsyncSession, version_id: UUID
) -> tuple[ModelVersion, RegisteredModel] | None:
    """A version and its model, both row-locked, in one round trip."""
    stmt = (
        select(ModelVersion, RegisteredModel)
        .join(RegisteredModel, RegisteredModel.id == ModelVersion.model_id)
        .where(ModelVersion.id == version_id)
        .with_for_update()
    )
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else (row[0], row[1])


_FOR_TRANSITION = f"""
    SELECT {VERSION_COLUMNS}, m.name AS model_name, m.production_version_id,
           m.production_version
    FROM {VERSIONS} v JOIN {MODELS} m ON m.id = v.model_id
    WHERE v.id = $1
"""


async def version_for_transition(
    conn: asyncpg.Connection, version_id: UUID, *, lock: bool
) -> Record | None:
    """The version with its model's name and production version. With `lock`, both rows are
    locked (in a transaction): the model's transitions queue, and a lock that waited for
    another transition returns both rows as that one left them (Postgres re-reads a locked row
    that changed), so the production version is current."""
    return await conn.fetchrow(_FOR_TRANSITION + (" FOR UPDATE" if lock else ""), version_id)


async def latest_in_stage(
    conn: asyncpg.Connection, model_id: UUID, stage: ModelStage
) -> Record | None:
    """The newest version of the model in the stage."""
    return await conn.fetchrow(f"""
        SELECT {VERSION_COLUMNS} FROM {VERSIONS} v
        WHERE v.model_id = $1 AND v.stage = $2
        ORDER BY v.seq DESC LIMIT 1
    """, model_id, stage.value)  # fmt: skip


_TRANSITION_FILL = {"model_name": "model_name"}

# A whole transition in one statement, applied only if the version's stage and its model's
# production version are still those it was planned from (`guard`, which locks both rows; a
# lock that waited re-reads them). Then the versions move (`moved`: a promotion archives the
# version it replaces in the same UPDATE, see migration 0005), the counts of their stages, the
# model's production version and `updated_at`, one audit row per move in the order planned,
# and the events, whose model name is the model's as locked. It returns the version as moved.
_TRANSITION = f"""
    WITH guard AS MATERIALIZED (
        SELECT m.id AS model_id, m.name AS model_name
        FROM {VERSIONS} v JOIN {MODELS} m ON m.id = v.model_id
        WHERE v.id = $1 AND v.stage = $2 AND m.production_version_id IS NOT DISTINCT FROM $3
        FOR UPDATE
    ), planned AS MATERIALIZED (
        SELECT p.* FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::uuid[])
            WITH ORDINALITY AS p (version_id, from_stage, to_stage, comment, audit_id, n)
        WHERE EXISTS (SELECT FROM guard)
        LIMIT 2  -- as plan_transition makes at most; else taken for 10, its generic plan dearer
    ), moved AS (
        UPDATE {VERSIONS} v
        SET stage = p.to_stage, updated_at = $10,
            approved_by = CASE WHEN v.id = $1 AND $11::text IS NOT NULL THEN $11
                               ELSE v.approved_by END,
            approved_at = CASE WHEN v.id = $1 AND $11::text IS NOT NULL THEN $10
                               ELSE v.approved_at END
        FROM planned p WHERE v.id = p.version_id
        RETURNING {VERSION_COLUMNS}
    ), counted AS (
        UPDATE {COUNTS} c SET n = c.n + d.delta
        FROM guard, (
            SELECT stage, sum(delta) AS delta FROM (
                SELECT from_stage AS stage, -1 AS delta FROM planned
                UNION ALL SELECT to_stage, 1 FROM planned
            ) each_move GROUP BY stage
        ) d
        WHERE c.model_id = guard.model_id AND c.stage = d.stage AND d.delta <> 0
    ), touched AS (
        UPDATE {MODELS} m SET updated_at = $10,
            production_version_id = CASE WHEN $14 THEN $12 ELSE m.production_version_id END,
            production_version = CASE WHEN $14 THEN $13 ELSE m.production_version END
        FROM guard WHERE m.id = guard.model_id
    ), audit AS (
        INSERT INTO {SCHEMA}.model_version_transitions
            (id, version_id, model_id, from_stage, to_stage, comment, transitioned_by,
             transitioned_at)
        SELECT p.audit_id, p.version_id, guard.model_id, p.from_stage, p.to_stage, p.comment,
               $9, $10
        FROM planned p, guard ORDER BY p.n
    ), {written_by_statement_sql(OUTBOX, 15, "guard", _TRANSITION_FILL)}
    SELECT v.*, guard.model_name FROM moved v, guard WHERE v.id = $1
"""


async def transition(
    uow: UnitOfWork,
    version: Mapping[str, Any],
    changes: Sequence[StageChange],
    audit_ids: Sequence[UUID],
    *,
    actor: str,
    at: datetime,
    approved_by: str | None,
    events: list[tuple[ModelVersionTransitioned, UUID]],
) -> Record | None:
    """Apply the stage changes planned for `version` (its id, stage and model's production
    version as the plan was made from them), each with its audit row (ids `audit_ids`), and
    the events, whose `model_name` the statement fills in, if neither the version's stage nor
    its model's production version changed since. Returns the version as moved, with its
    model's name; None when one did (nothing written). `approved_by` records an approval on
    `version`."""
    if len(changes) > 2:  # the statement applies two at most (its LIMIT)
        raise ValueError(f"a transition makes one or two stage changes, not {len(changes)}")
    production = ModelStage.PRODUCTION
    serving = next(((c.version_id, c.version) for c in changes if c.to_stage == production),
                   (None, None))  # fmt: skip
    return await uow.fetchrow_writing_events(
        _TRANSITION, version["id"], version["stage"], version["production_version_id"],
        [c.version_id for c in changes], [c.from_stage.value for c in changes],
        [c.to_stage.value for c in changes], [c.comment for c in changes], list(audit_ids),
        actor, at, approved_by, *serving,
        any(production in (c.from_stage, c.to_stage) for c in changes),
        events=events, fill=_TRANSITION_FILL,
    )  # fmt: skip


async def list_versions(
    conn: asyncpg.Connection,
    model_id: UUID,
    *,
    stage: ModelStage | None,
    limit: int,
    before_seq: int | None,
) -> tuple[int, list[Record]] | None:
    """How many versions the model has (in `stage`, if given) and a page of them, newest
    first, in one round trip; None when there is no model. Keyset pagination on `seq`, so
    page 1000 costs what page 1 does, and the count comes from the counts kept per stage, the
    same at any size. Each combination of filters is its own statement, so each gets its own
    plan on the index."""
    conditions, arguments = ["v.model_id = $1"], [model_id, limit]
    counted = "stage"  # every stage
    if stage is not None:
        arguments.append(stage.value)
        counted = f"${len(arguments)}"
        conditions.append(f"v.stage = {counted}")
    if before_seq is not None:
        arguments.append(before_seq)
        conditions.append(f"v.seq < ${len(arguments)}")
    where = " AND ".join(conditions)
    # The model's row carries the count; a model without versions (on this page) still
    # comes back as one row, its version columns null.
    rows = await conn.fetch(f"""
        SELECT m.total, page.* FROM (
            SELECT coalesce((
                SELECT sum(n)::bigint FROM {COUNTS} WHERE model_id = $1 AND stage = {counted}
            ), 0) AS total
            FROM {MODELS} WHERE id = $1
        ) m LEFT JOIN LATERAL (
            SELECT {VERSION_COLUMNS} FROM {VERSIONS} v WHERE {where} ORDER BY v.seq DESC LIMIT $2
        ) page ON true
    """, *arguments)  # fmt: skip
    if not rows:
        return None
    return rows[0]["total"], [] if rows[0]["id"] is None else rows


async def delete_version(conn: asyncpg.Connection, version_id: UUID) -> None:
    """Delete the version (its history goes with it), count it out of its stage and mark its
    model updated."""
    await conn.execute(f"""
        WITH gone AS (DELETE FROM {VERSIONS} WHERE id = $1 RETURNING model_id, stage),
        touched AS (UPDATE {MODELS} m SET updated_at = now() FROM gone WHERE m.id = gone.model_id)
        UPDATE {COUNTS} c SET n = c.n - 1
        FROM gone WHERE c.model_id = gone.model_id AND c.stage = gone.stage
    """, version_id)  # fmt: skip


async def list_transitions(
    conn: asyncpg.Connection, version_id: UUID, *, limit: int, offset: int
) -> tuple[list[Record], int]:
    transitions = f"{SCHEMA}.model_version_transitions WHERE version_id = $1"
    items = await conn.fetch(f"""
        SELECT id, version_id, model_id, from_stage, to_stage, comment, transitioned_by,
               transitioned_at
        FROM {transitions} ORDER BY seq DESC LIMIT $2 OFFSET $3
    """, version_id, limit, offset)  # fmt: skip
    total = await conn.fetchval(f"SELECT count(*) FROM {transitions}", version_id)
    return items, total


async def summarize(
    session: AsyncSession, *, projects: Collection[UUID] | None, limit: int, offset: int
) -> tuple[list[Row], int, dict[str, int]]:
    """Per-model version counts by stage, newest and production version, plus the totals over
    every model selected. The counts are those the writes keep (`version_counts`) and the
    production version the model's row names, so a summary reads a few rows per model at any
    number of versions, not every version."""
    c = VersionCount

    def counted(stage: ModelStage | None = None) -> ColumnElement[int]:
        n = func.sum(c.n) if stage is None else func.sum(c.n).filter(c.stage == stage.value)
        return cast(func.coalesce(n, 0), BigInteger)

    per_stage = [counted(stage).label(stage.value) for stage in ModelStage]
    counts = (
        select(counted().label("versions"), *per_stage)
        .where(c.model_id == RegisteredModel.id)
        .lateral("counts")
    )
    latest = (
        select(ModelVersion.version)
        .where(ModelVersion.model_id == RegisteredModel.id)
        .order_by(ModelVersion.seq.desc())
        .limit(1)
        .scalar_subquery()
    )
    where = [] if projects is None else [RegisteredModel.project_id.in_(list(projects))]
    rows = (
        await session.execute(
            select(
                RegisteredModel.id,
                RegisteredModel.name,
                RegisteredModel.project_id,
                RegisteredModel.updated_at,
                *counts.c,
                latest.label("latest_version"),
                RegisteredModel.production_version,
            )
            .join(counts, true())
            .where(*where)
            .order_by(RegisteredModel.name, RegisteredModel.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    models = select(func.count()).select_from(RegisteredModel).where(*where).scalar_subquery()
    totals_stmt = (
        select(models.label("models"), counted().label("versions"), *per_stage)
        .select_from(c)
        .join(RegisteredModel, RegisteredModel.id == c.model_id)
        .where(*where)
    )
    totals = (await session.execute(totals_stmt)).one()._mapping
    return list(rows), totals["models"], {k: totals[k] for k in ["versions", *ModelStage]}


# Where versions serve (the serving service's deployment events)

_SERVING_OF_MODEL = Statement(
    select(VersionDeployment.__table__)
    .where(
        VersionDeployment.model_id == bindparam("model_id"),
        VersionDeployment.state != literal_column("'retired'"),
    )
    .order_by(VersionDeployment.changed_at, VersionDeployment.deployment_id)
)


async def record_deployment(session: AsyncSession, values: dict[str, Any]) -> None:
    """Keep a deployment's state unless an event newer than this one set it already."""
    stmt = pg_insert(VersionDeployment).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[VersionDeployment.deployment_id],
        set_={key: stmt.excluded[key] for key in values if key != "deployment_id"},
        where=VersionDeployment.changed_at <= stmt.excluded.changed_at,
    )
    await session.execute(stmt)


async def serving_of_model(conn: asyncpg.Connection, model_id: UUID) -> list[Record]:
    """Every deployment of the model's versions not yet retired, oldest change first."""
    return await _SERVING_OF_MODEL.fetch(conn, model_id=model_id)

# ---- The promotion policy and its requests: SQLAlchemy Core statements built once from the
# tables and compiled for asyncpg (shared.statements), run on the unit of work's connection.

_V, _M = ModelVersion.__table__, RegisteredModel.__table__
_POLICIES = PromotionPolicy.__table__
_REQUESTS = PromotionRequest.__table__
_APPROVALS = PromotionApproval.__table__
_RULES = ("require_staging", "approvals_required", "forbid_author_approval", "metric_gate",
          "updated_by", "updated_at")  # fmt: skip
# The model's own policy before its project's: `false` sorts first.
_OVERRIDE_FIRST = _POLICIES.c.model_id.is_(None)


def _policy_applies(project_id: ColumnElement, model_id: ColumnElement) -> ColumnElement[bool]:
    return and_(_POLICIES.c.project_id == project_id,
                or_(_POLICIES.c.model_id == model_id, _POLICIES.c.model_id.is_(None)))  # fmt: skip


_POLICY_FOR_VERSION = Statement(
    select(_M.c.project_id, _V.c.model_id, _POLICIES.c.id.label("policy_id"),
           _POLICIES.c.model_id.label("policy_model_id"), *(_POLICIES.c[r] for r in _RULES))
    .select_from(
        _V.join(_M, _M.c.id == _V.c.model_id)
        .outerjoin(_POLICIES, _policy_applies(_M.c.project_id, _M.c.id))
    )
    .where(_V.c.id == bindparam("version_id"))
    .order_by(_OVERRIDE_FIRST)
    .limit(literal_column("1"))
)
_POLICY_OF_MODEL = Statement(
    select(_POLICIES)
    .where(_policy_applies(bindparam("project_id"), bindparam("model_id")))
    .order_by(_OVERRIDE_FIRST)
    .limit(literal_column("1"))
)
_PROJECT_POLICY = Statement(
    select(_POLICIES).where(_POLICIES.c.project_id == bindparam("project_id"),
                            _POLICIES.c.model_id.is_(None))
)


def _upsert_policy(where: ColumnElement[bool], key: str) -> Statement:
    inserted = pg_insert(_POLICIES).values({c.name: bindparam(c.name) for c in _POLICIES.c})
    return Statement(
        inserted.on_conflict_do_update(
            index_elements=[key], index_where=where,
            set_={name: inserted.excluded[name] for name in _RULES},
        ).returning(_POLICIES)
    )  # fmt: skip


_UPSERT_PROJECT_POLICY = _upsert_policy(_POLICIES.c.model_id.is_(None), "project_id")
_UPSERT_MODEL_POLICY = _upsert_policy(_POLICIES.c.model_id.is_not(None), "model_id")
_DELETE_PROJECT_POLICY = Statement(
    delete(_POLICIES)
    .where(_POLICIES.c.project_id == bindparam("project_id"), _POLICIES.c.model_id.is_(None))
    .returning(_POLICIES.c.id)
)
_DELETE_MODEL_POLICY = Statement(
    delete(_POLICIES).where(_POLICIES.c.model_id == bindparam("model_id")).returning(_POLICIES.c.id)
)


async def policy_for_version(conn: asyncpg.Connection, version_id: UUID) -> Record | None:
    """The version's project and model with the policy its moves to production follow (the
    model's own, else its project's; the policy's columns null when there is none). None when
    there is no such version."""
    return await _POLICY_FOR_VERSION.fetchrow(conn, version_id=version_id)


async def policy_of_model(
    conn: asyncpg.Connection, project_id: UUID, model_id: UUID
) -> Record | None:
    """The policy the model's moves to production follow: its own, else its project's."""
    return await _POLICY_OF_MODEL.fetchrow(conn, project_id=project_id, model_id=model_id)


async def project_policy(conn: asyncpg.Connection, project_id: UUID) -> Record | None:
    return await _PROJECT_POLICY.fetchrow(conn, project_id=project_id)


async def put_policy(conn: asyncpg.Connection, values: Mapping[str, Any]) -> Record:
    """Insert or replace the policy of `values["project_id"]`, or with a `model_id`, the
    model's override."""
    statement = _UPSERT_PROJECT_POLICY if values["model_id"] is None else _UPSERT_MODEL_POLICY
    return await statement.fetchrow(conn, **values)


async def delete_policy(
    conn: asyncpg.Connection, *, project_id: UUID, model_id: UUID | None
) -> bool:
    """Remove the project's policy, or with `model_id`, the model's override; False if none."""
    if model_id is None:
        return await _DELETE_PROJECT_POLICY.fetchval(conn, project_id=project_id) is not None
    return await _DELETE_MODEL_POLICY.fetchval(conn, model_id=model_id) is not None


_INSERT_REQUEST = Statement(
    pg_insert(_REQUESTS)
    .values({c.name: bindparam(c.name) for c in _REQUESTS.c if c.name != "seq"})
    .on_conflict_do_nothing(index_elements=["version_id"], index_where=text("status = 'pending'"))
    .returning(_REQUESTS)
)
_LOCK_REQUEST = Statement(
    select(_REQUESTS).where(_REQUESTS.c.id == bindparam("request_id")).with_for_update()
)
_GET_REQUEST = Statement(select(_REQUESTS).where(_REQUESTS.c.id == bindparam("request_id")))
_PROJECT_OF_REQUEST = Statement(
    select(_REQUESTS.c.project_id).where(_REQUESTS.c.id == bindparam("request_id"))
)
_CLOSE_REQUEST = Statement(
    update(_REQUESTS)
    .where(_REQUESTS.c.id == bindparam("request_id"))
    .values(status=bindparam("status"), closed_by=bindparam("closed_by"),
            closed_at=bindparam("closed_at"), reason=bindparam("reason"))
    .returning(_REQUESTS)
)  # fmt: skip
# The approval and its event, one statement: the event is written before those of the move
# that the approval may make next. `approvals` counts this one (a CTE sees the table before).
_APPROVAL_FILL = {"approvals": "approvals"}
_INSERT_APPROVAL = Statement(text(f"""
    WITH approval AS (
        INSERT INTO {SCHEMA}.{_APPROVALS.name} (request_id, approver, comment, approved_at)
        VALUES (CAST(:request_id AS uuid), :approver, :comment, :approved_at)
        ON CONFLICT DO NOTHING
        RETURNING *, 1 + (SELECT count(*) FROM {SCHEMA}.{_APPROVALS.name}
                          WHERE request_id = CAST(:request_id AS uuid)) AS approvals
    ), {written_by_statement_sql(OUTBOX, None, "approval", _APPROVAL_FILL)}
    SELECT * FROM approval
"""))
_APPROVALS_OF = Statement(
    select(_APPROVALS)
    .where(_APPROVALS.c.request_id == any_(bindparam("request_ids", type_=ARRAY(Uuid))))
    .order_by(_APPROVALS.c.approved_at, _APPROVALS.c.approver)
)


def _requests_matching() -> list[ColumnElement[bool]]:
    """Filters each left out by passing None: one statement, one plan, for every combination."""
    def given(name: str, type_: Any) -> Any:
        return bindparam(name, type_=type_)

    r = _REQUESTS.c
    return [
        or_(given("projects", ARRAY(Uuid)).is_(None), r.project_id == any_(given("projects", ARRAY(Uuid)))),
        or_(given("model_id", Uuid).is_(None), r.model_id == given("model_id", Uuid)),
        or_(given("version_id", Uuid).is_(None), r.version_id == given("version_id", Uuid)),
        or_(given("status", String).is_(None), r.status == given("status", String)),
    ]  # fmt: skip


_LIST_REQUESTS = Statement(
    select(_REQUESTS).where(*_requests_matching()).order_by(_REQUESTS.c.seq.desc())
    .limit(bindparam("limit")).offset(bindparam("offset"))
)  # fmt: skip
_COUNT_REQUESTS = Statement(select(func.count()).select_from(_REQUESTS).where(*_requests_matching()))


async def insert_promotion_request(
    conn: asyncpg.Connection, values: Mapping[str, Any]
) -> Record | None:
    """The new pending request; None when the version has one pending already."""
    return await _INSERT_REQUEST.fetchrow(conn, **values)


async def get_promotion_request(
    conn: asyncpg.Connection, request_id: UUID, *, lock: bool = False
) -> Record | None:
    return await (_LOCK_REQUEST if lock else _GET_REQUEST).fetchrow(conn, request_id=request_id)


async def project_of_request(conn: asyncpg.Connection, request_id: UUID) -> UUID | None:
    return await _PROJECT_OF_REQUEST.fetchval(conn, request_id=request_id)


async def close_promotion_request(
    conn: asyncpg.Connection, request_id: UUID, *, status: str, closed_by: str,
    closed_at: datetime, reason: str | None,
) -> Record:  # fmt: skip
    return await _CLOSE_REQUEST.fetchrow(
        conn, request_id=request_id, status=status, closed_by=closed_by, closed_at=closed_at,
        reason=reason,
    )  # fmt: skip


async def insert_approval(
    uow: UnitOfWork, values: Mapping[str, Any], event: ModelVersionApproved, aggregate_id: UUID
) -> Record | None:
    """The approval with its event, whose `approvals` (how many the request has now) the
    statement fills in; None when this approver has approved the request already."""
    return await uow.fetchrow_writing_events(
        _INSERT_APPROVAL, values, events=[(event, aggregate_id)], fill=_APPROVAL_FILL
    )


async def approvals_of(
    conn: asyncpg.Connection, request_ids: Sequence[UUID]
) -> dict[UUID, list[Record]]:
    """Each request's approvals, oldest first."""
    found: dict[UUID, list[Record]] = {r: [] for r in request_ids}
    for approval in await _APPROVALS_OF.fetch(conn, request_ids=list(request_ids)):
        found[approval["request_id"]].append(approval)
    return found


async def list_promotion_requests(
    conn: asyncpg.Connection, *, projects: Collection[UUID] | None, model_id: UUID | None,
    version_id: UUID | None, status: str | None, limit: int, offset: int,
) -> tuple[list[Record], int]:  # fmt: skip
    """A page of the requests matching, newest first, and how many match."""
    filters = {"projects": None if projects is None else list(projects), "model_id": model_id,
               "version_id": version_id, "status": status}  # fmt: skip
    items = await _LIST_REQUESTS.fetch(conn, **filters, limit=limit, offset=offset)
    return items, await _COUNT_REQUESTS.fetchval(conn, **filters)
