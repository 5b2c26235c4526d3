"""The registry's queries: asyncpg `Statement`s built once from models.py's tables, and the ORM.

STYLE.md habit 12 with its hot-path variant: versions, models and the promotion policy are
`Statement`s run with named values on `uow.conn` (or on the unit of work, for one that writes
its own events); entities changed through the ORM, searches and the summary use `uow.session`.
None commits but a one-statement command, which commits itself.
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
    BigInteger,
    Boolean,
    ColumnElement,
    Integer,
    Row,
    String,
    Table,
    Text,
    Uuid,
    alias,
    and_,
    any_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import FromClause

from services.registry.domain import ModelStage, StageChange
from services.registry.models import (
    SCHEMA,
    Base,
    ModelVersion,
    ModelVersionTransition,
    PromotionApproval,
    PromotionPolicy,
    PromotionRequest,
    RegisteredModel,
    VersionCount,
    VersionDeployment,
    metadata,
)
from shared.db import UnitOfWork, substring_pattern
from shared.events.registry import (
    ModelRegistered,
    ModelVersionApproved,
    ModelVersionCreated,
    ModelVersionTransitioned,
)
from shared.outbox import OUTBOX_TABLE, events_written_by
from shared.statements import Statement

Record = asyncpg.Record
# A row as asyncpg reads it, or a mapping that stands for one.
RecordLike = Mapping[str, Any] | Record


def _table(entity: type[Base]) -> Table:
    table = entity.__table__
    assert isinstance(table, Table), entity
    return table


MODELS = _table(RegisteredModel)
VERSIONS = _table(ModelVersion)
# How many versions each model has in each stage: moved by the statement that moves versions.
COUNTS = _table(VersionCount)
TRANSITIONS = _table(ModelVersionTransition)
OUTBOX = metadata.tables[f"{SCHEMA}.{OUTBOX_TABLE}"]
# The aliases the statements read as SQL: `m` a model, `v` a version.
m = alias(MODELS, "m")
v = alias(VERSIONS, "v")
ONE = literal_column("1", Integer)


def _param(column: ColumnElement[Any], name: str | None = None) -> Any:
    """A named parameter of the column's type (its name unless given)."""
    return bindparam(name or column.key, type_=column.type)


def version_columns(versions: FromClause) -> list[ColumnElement[Any]]:
    """A version as the API shows it: every column, `metadata` as `meta` (the ORM's name)."""
    return [c.label("meta") if c.key == "metadata" else c for c in versions.c]


MODEL_COLUMNS = [
    MODELS.c[name]
    for name in (
        "id",
        "name",
        "project_id",
        "description",
        "tags",
        "created_by",
        "created_at",
        "updated_at",
    )
]


def _json(value: Any) -> str:
    """A jsonb value as asyncpg takes it through SQLAlchemy's codec: JSON text."""
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


def _insert_model() -> Statement:
    """The model, its counts and its event: one statement, one round trip."""
    columns = ("id", "project_id", "name", "description", "tags", "created_by")
    model = (
        pg_insert(MODELS)
        .values({name: _param(MODELS.c[name]) for name in columns})
        .on_conflict_do_nothing(index_elements=[MODELS.c.project_id, MODELS.c.name])
        .returning(*MODEL_COLUMNS)
        .cte("model")
    )
    stages = literal_column(f"ARRAY[{', '.join(repr(s.value) for s in ModelStage)}]", ARRAY(Text))
    counts = insert(COUNTS).from_select(
        ["model_id", "stage", "n"], select(model.c.id, func.unnest(stages), literal_column("0"))
    )
    return Statement(
        select(*model.c).add_cte(counts.cte("counts"), events_written_by(OUTBOX, model))
    )


_INSERT_MODEL = _insert_model()


async def insert_model(
    uow: UnitOfWork, values: dict[str, Any], event: ModelRegistered
) -> Record | None:
    """The new model, committed with its event; None when its project already has a model of
    that name (then nothing was written)."""
    return await uow.fetchrow_writing_events(
        _INSERT_MODEL, {**values, "tags": _json(values["tags"])}, events=[(event, values["id"])]
    )


_MODEL_ID = _param(MODELS.c.id, "model_id")
_GET_MODEL = Statement(select(*MODEL_COLUMNS).where(MODELS.c.id == _MODEL_ID))
_PROJECT_OF_MODEL = Statement(select(MODELS.c.project_id).where(MODELS.c.id == _MODEL_ID))
_PROJECT_OF_VERSION = Statement(
    select(m.c.project_id)
    .select_from(v.join(m, m.c.id == v.c.model_id))
    .where(v.c.id == _param(v.c.id, "version_id"))
)


async def get_model(conn: asyncpg.Connection, model_id: UUID) -> Record | None:
    return await _GET_MODEL.fetchrow(conn, model_id=model_id)


async def project_of_model(conn: asyncpg.Connection, model_id: UUID) -> UUID | None:
    return await _PROJECT_OF_MODEL.fetchval(conn, model_id=model_id)


async def project_of_version(conn: asyncpg.Connection, version_id: UUID) -> UUID | None:
    return await _PROJECT_OF_VERSION.fetchval(conn, version_id=version_id)


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
    conditions: list[ColumnElement[bool]] = []
    if projects is not None:
        conditions.append(RegisteredModel.project_id.in_(list(projects)))
    if name:
        conditions.append(RegisteredModel.name.ilike(substring_pattern(name)))
    for key, value in tags:
        if value is None:
            conditions.append(RegisteredModel.tags.has_key(key))
        else:
            conditions.append(
                or_(
                    RegisteredModel.tags.contains({key: value}),
                    RegisteredModel.tags.has_key(f"{key}:{value}"),
                )
            )
    items = await session.scalars(
        select(RegisteredModel)
        .where(*conditions)
        .order_by(RegisteredModel.name, RegisteredModel.id)
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(
        select(func.count()).select_from(RegisteredModel).where(*conditions)
    )
    return items.all(), total or 0


async def model_name_taken(session: AsyncSession, project_id: UUID, name: str) -> bool:
    stmt = select(RegisteredModel.id).where(
        RegisteredModel.project_id == project_id, RegisteredModel.name == name
    )
    return (await session.scalar(stmt)) is not None


_DELETE_MODEL = Statement(
    select(cast(func.coalesce(func.sum(COUNTS.c.n), literal_column("0")), BigInteger))
    .where(COUNTS.c.model_id == _MODEL_ID)
    .add_cte(delete(MODELS).where(MODELS.c.id == _MODEL_ID).cte("gone"))
)


async def delete_model(conn: asyncpg.Connection, model_id: UUID) -> int:
    """Delete the model; its versions and their history go with it (ON DELETE CASCADE).
    Returns how many versions it had (the counts as they were before the delete)."""
    return await _DELETE_MODEL.fetchval(conn, model_id=model_id)


# The event's model name and version label are the statement's to know.
_VERSION_FILL = {"model_name": "model_name", "version": "version"}
# Values given as JSON text.
_VERSION_JSON = ("metrics", "tags", "metadata")


def _insert_numbered_version(with_event: bool) -> Statement:
    """Creating a version is the registry's busiest write: the counter bump, the insert and the
    count of the version's stage are one statement (one round trip), and with it its event."""
    model = (
        update(MODELS)
        .where(MODELS.c.id == _MODEL_ID)
        .values(version_counter=MODELS.c.version_counter + ONE, updated_at=func.now())
        .returning(MODELS.c.version_counter, MODELS.c.name)
        .cte("model")
    )
    given = (
        "id",
        "model_id",
        "stage",
        "description",
        "run_id",
        "artifact_version_id",
        "artifact_uri",
        *_VERSION_JSON,
        "created_by",
    )
    values = {name: _param(VERSIONS.c[name]) for name in given}
    values["version"] = func.coalesce(
        _param(VERSIONS.c.version), cast(model.c.version_counter, Text)
    )
    inserted = (
        pg_insert(VERSIONS)
        .from_select(list(values), select(*values.values()).select_from(model))
        .on_conflict_do_nothing(index_elements=[VERSIONS.c.model_id, VERSIONS.c.version])
        .returning(
            *version_columns(VERSIONS),
            select(model.c.name).scalar_subquery().label("model_name"),
        )
        .cte("inserted")
    )
    counted = (
        update(COUNTS)
        .where(COUNTS.c.model_id == inserted.c.model_id, COUNTS.c.stage == inserted.c.stage)
        .values(n=COUNTS.c.n + ONE)
        .cte("counted")
    )
    statement = select(*inserted.c).add_cte(counted)
    if with_event:
        statement = statement.add_cte(events_written_by(OUTBOX, inserted, _VERSION_FILL))
    return Statement(statement)


_INSERT_NUMBERED_VERSION = _insert_numbered_version(with_event=False)
_INSERT_NUMBERED_VERSION_WITH_EVENT = _insert_numbered_version(with_event=True)


def _version_values(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, **{name: _json(values[name]) for name in _VERSION_JSON}}


async def insert_numbered_version(
    conn: asyncpg.Connection, values: dict[str, Any]
) -> Record | None:
    """Bump the model's counter and `updated_at` (locking its row) and insert the version,
    labelled `values["version"]` or else the new number; the row carries `model_name`. None when
    the model does not exist or the label is taken (the bump is then kept: the row stays
    locked)."""
    return await _INSERT_NUMBERED_VERSION.fetchrow(conn, **_version_values(values))


async def insert_numbered_version_with_event(
    uow: UnitOfWork, values: dict[str, Any], event: ModelVersionCreated
) -> Record | None:
    """As `insert_numbered_version`, committed by itself with its event, whose `model_name`
    and `version` the statement fills in. None when nothing was written; a bump made then is
    kept (the number is taken by a label: the next try skips it anyway)."""
    return await uow.fetchrow_writing_events(
        _INSERT_NUMBERED_VERSION_WITH_EVENT,
        _version_values(values),
        events=[(event, values["id"])],
        fill=_VERSION_FILL,
    )


_VERSION_ID = _param(VERSIONS.c.id, "version_id")
_VERSION_EXISTS = Statement(select(exists().where(VERSIONS.c.id == _VERSION_ID)))
_VERSION_BY_LABEL = Statement(
    select(*version_columns(v)).where(
        v.c.model_id == _MODEL_ID, v.c.version == _param(v.c.version, "label")
    )
)
_GET_VERSION = Statement(select(*version_columns(v)).where(v.c.id == _VERSION_ID))


async def version_exists(conn: asyncpg.Connection, version_id: UUID) -> bool:
    return await _VERSION_EXISTS.fetchval(conn, version_id=version_id)


async def get_version(conn: asyncpg.Connection, version_id: UUID) -> Record | None:
    return await _GET_VERSION.fetchrow(conn, version_id=version_id)


async def get_version_by_label(
    conn: asyncpg.Connection, model_id: UUID, label: str
) -> Record | None:
    return await _VERSION_BY_LABEL.fetchrow(conn, model_id=model_id, label=label)


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


_FOR_TRANSITION = (
    select(
        *version_columns(v),
        m.c.name.label("model_name"),
        m.c.production_version_id,
        m.c.production_version,
    )
    .select_from(v.join(m, m.c.id == v.c.model_id))
    .where(v.c.id == _VERSION_ID)
)
_READ_FOR_TRANSITION = Statement(_FOR_TRANSITION)
_LOCK_FOR_TRANSITION = Statement(_FOR_TRANSITION.with_for_update())


async def version_for_transition(
    conn: asyncpg.Connection, version_id: UUID, *, lock: bool
) -> Record | None:
    """The version with its model's name and production version. With `lock`, both rows are
    locked (in a transaction): the model's transitions queue, and a lock that waited for
    another transition returns both rows as that one left them (Postgres re-reads a locked row
    that changed), so the production version is current."""
    statement = _LOCK_FOR_TRANSITION if lock else _READ_FOR_TRANSITION
    return await statement.fetchrow(conn, version_id=version_id)


_LATEST_IN_STAGE = Statement(
    select(*version_columns(v))
    .where(v.c.model_id == _MODEL_ID, v.c.stage == _param(v.c.stage))
    .order_by(v.c.seq.desc())
    .limit(ONE)
)


async def latest_in_stage(
    conn: asyncpg.Connection, model_id: UUID, stage: ModelStage
) -> Record | None:
    """The newest version of the model in the stage."""
    return await _LATEST_IN_STAGE.fetchrow(conn, model_id=model_id, stage=stage.value)


_TRANSITION_FILL = {"model_name": "model_name"}


def _transition() -> Statement:
    """A whole transition in one statement, applied only if the version's stage and its model's
    production version are still those planned from (`guard` locks both rows).

    It moves the versions (a promotion archives the one it replaces in the same UPDATE, migration
    0005), their stages' counts and the model's production version, writes an audit row per move
    and the events, and returns the version as moved."""
    version_id, at = _param(v.c.id, "version_id"), _param(v.c.updated_at, "at")
    approved_by = _param(v.c.approved_by)
    guard = (
        select(m.c.id.label("model_id"), m.c.name.label("model_name"))
        .select_from(v.join(m, m.c.id == v.c.model_id))
        .where(
            v.c.id == version_id,
            v.c.stage == _param(v.c.stage),
            m.c.production_version_id.is_not_distinct_from(_param(m.c.production_version_id)),
        )
        .with_for_update()
        .cte("guard")
        .prefix_with("MATERIALIZED")
    )
    moves = (
        func.unnest(
            bindparam("version_ids", type_=ARRAY(Uuid)),
            bindparam("from_stages", type_=ARRAY(Text)),
            bindparam("to_stages", type_=ARRAY(Text)),
            bindparam("comments", type_=ARRAY(Text)),
            bindparam("audit_ids", type_=ARRAY(Uuid)),
        )
        .table_valued(
            "version_id", "from_stage", "to_stage", "comment", "audit_id", with_ordinality="n"
        )
        .render_derived()
        .alias("p")
    )
    planned = (
        select(*moves.c)
        .where(exists(select(guard)))
        .limit(literal_column("2"))  # as plan_transition makes at most; else taken for 10
        .cte("planned")
        .prefix_with("MATERIALIZED")
    )
    approving = and_(VERSIONS.c.id == version_id, approved_by.is_not(None))
    moved = (
        update(VERSIONS)
        .where(VERSIONS.c.id == planned.c.version_id)
        .values(
            stage=planned.c.to_stage,
            updated_at=at,
            approved_by=case((approving, approved_by), else_=VERSIONS.c.approved_by),
            approved_at=case((approving, at), else_=VERSIONS.c.approved_at),
        )
        .returning(*version_columns(VERSIONS))
        .cte("moved")
    )
    each_move = union_all(
        select(planned.c.from_stage.label("stage"), literal_column("-1").label("delta")),
        select(planned.c.to_stage, ONE),
    ).subquery("each_move")
    delta = (
        select(each_move.c.stage, func.sum(each_move.c.delta).label("delta"))
        .group_by(each_move.c.stage)
        .subquery("d")
    )
    counted = (
        update(COUNTS)
        .where(
            COUNTS.c.model_id == guard.c.model_id,
            COUNTS.c.stage == delta.c.stage,
            delta.c.delta != literal_column("0"),
        )
        .values(n=COUNTS.c.n + delta.c.delta)
        .cte("counted")
    )
    production_moves = bindparam("production_moves", type_=Boolean)
    touched = (
        update(MODELS)
        .where(MODELS.c.id == guard.c.model_id)
        .values(
            updated_at=at,
            production_version_id=case(
                (production_moves, _param(m.c.production_version_id, "serving_id")),
                else_=MODELS.c.production_version_id,
            ),
            production_version=case(
                (production_moves, _param(m.c.production_version, "serving_version")),
                else_=MODELS.c.production_version,
            ),
        )
        .cte("touched")
    )
    audit = insert(TRANSITIONS).from_select(
        [
            "id",
            "version_id",
            "model_id",
            "from_stage",
            "to_stage",
            "comment",
            "transitioned_by",
            "transitioned_at",
        ],
        select(
            planned.c.audit_id,
            planned.c.version_id,
            guard.c.model_id,
            planned.c.from_stage,
            planned.c.to_stage,
            planned.c.comment,
            _param(TRANSITIONS.c.transitioned_by, "actor"),
            at,
        )
        .select_from(planned, guard)
        .order_by(planned.c.n),
    )
    return Statement(
        select(*moved.c, guard.c.model_name)
        .where(moved.c.id == version_id)
        .add_cte(
            counted, touched, audit.cte("audit"), events_written_by(OUTBOX, guard, _TRANSITION_FILL)
        )
    )


_TRANSITION = _transition()


async def transition(
    uow: UnitOfWork,
    version: RecordLike,
    changes: Sequence[StageChange],
    audit_ids: Sequence[UUID],
    *,
    actor: str,
    at: datetime,
    approved_by: str | None,
    events: list[tuple[ModelVersionTransitioned, UUID]],
) -> Record | None:
    """Apply the planned `changes` to `version`, with their audit rows (`audit_ids`) and events,
    if the stage and production version the plan assumed still hold.

    Returns the version as moved (with `model_name`), or None with nothing written; `approved_by`
    records an approval on `version`."""
    if len(changes) > 2:  # the statement applies two at most (its LIMIT)
        raise ValueError(f"a transition makes one or two stage changes, not {len(changes)}")
    production = ModelStage.PRODUCTION
    serving = next(
        ((c.version_id, c.version) for c in changes if c.to_stage == production), (None, None)
    )
    values = {
        "version_id": version["id"],
        "stage": version["stage"],
        "production_version_id": version["production_version_id"],
        "version_ids": [c.version_id for c in changes],
        "from_stages": [c.from_stage.value for c in changes],
        "to_stages": [c.to_stage.value for c in changes],
        "comments": [c.comment for c in changes],
        "audit_ids": list(audit_ids),
        "actor": actor,
        "at": at,
        "approved_by": approved_by,
        "serving_id": serving[0],
        "serving_version": serving[1],
        "production_moves": any(production in (c.from_stage, c.to_stage) for c in changes),
    }
    return await uow.fetchrow_writing_events(
        _TRANSITION, values, events=events, fill=_TRANSITION_FILL
    )


async def list_versions(
    conn: asyncpg.Connection,
    model_id: UUID,
    *,
    stage: ModelStage | None,
    limit: int,
    before_seq: int | None,
) -> tuple[int, list[Record]] | None:
    """How many versions the model has (in `stage`, if given) and a page of them, newest first,
    in one round trip; None when there is no model.

    Keyset pagination on `seq` and the counts kept per stage cost the same at any size; each
    combination of filters is a statement of its own, with its own plan."""
    statement = _LIST_VERSIONS[stage is not None, before_seq is not None]
    values = {
        "model_id": model_id,
        "limit": limit,
        "stage": stage and stage.value,
        "before_seq": before_seq,
    }
    rows = await statement.fetch(conn, **values)
    if not rows:
        return None
    return rows[0]["total"], [] if rows[0]["id"] is None else rows


def _list_versions(by_stage: bool, before: bool) -> Statement:
    """One of `list_versions`' statements: the model's row carries the count, and a model
    without versions (on this page) still comes back as one row, its version columns null."""
    stage = _param(v.c.stage)
    counted = [COUNTS.c.model_id == _MODEL_ID] + ([COUNTS.c.stage == stage] if by_stage else [])
    total = select(
        func.coalesce(
            select(cast(func.sum(COUNTS.c.n), BigInteger)).where(*counted).scalar_subquery(),
            literal_column("0"),
        ).label("total")
    ).where(m.c.id == _MODEL_ID)
    conditions = [v.c.model_id == _MODEL_ID]
    if by_stage:
        conditions.append(v.c.stage == stage)
    if before:
        conditions.append(v.c.seq < _param(v.c.seq, "before_seq"))
    page = (
        select(*version_columns(v))
        .where(*conditions)
        .order_by(v.c.seq.desc())
        .limit(bindparam("limit", type_=BigInteger))
        .lateral("page")
    )
    totals = total.subquery("m")
    return Statement(select(totals.c.total, *page.c).select_from(totals.outerjoin(page, true())))


_LIST_VERSIONS = {
    (by_stage, before): _list_versions(by_stage, before)
    for by_stage in (False, True)
    for before in (False, True)
}


def _delete_version() -> Statement:
    gone = (
        delete(VERSIONS)
        .where(VERSIONS.c.id == _VERSION_ID)
        .returning(VERSIONS.c.model_id, VERSIONS.c.stage)
        .cte("gone")
    )
    touched = update(MODELS).where(MODELS.c.id == gone.c.model_id).values(updated_at=func.now())
    counted = (
        update(COUNTS)
        .where(COUNTS.c.model_id == gone.c.model_id, COUNTS.c.stage == gone.c.stage)
        .values(n=COUNTS.c.n - ONE)
    )
    return Statement(counted.add_cte(touched.cte("touched")))


_DELETE_VERSION = _delete_version()


async def delete_version(conn: asyncpg.Connection, version_id: UUID) -> None:
    """Delete the version (its history goes with it), count it out of its stage and mark its
    model updated."""
    await _DELETE_VERSION.execute(conn, version_id=version_id)


_OF_VERSION = TRANSITIONS.c.version_id == _VERSION_ID
_LIST_TRANSITIONS = Statement(
    select(*(c for c in TRANSITIONS.c if c.key != "seq"))
    .where(_OF_VERSION)
    .order_by(TRANSITIONS.c.seq.desc())
    .limit(bindparam("limit", type_=BigInteger))
    .offset(bindparam("offset", type_=BigInteger))
)
_COUNT_TRANSITIONS = Statement(select(func.count()).select_from(TRANSITIONS).where(_OF_VERSION))


async def list_transitions(
    conn: asyncpg.Connection, version_id: UUID, *, limit: int, offset: int
) -> tuple[list[Record], int]:
    items = await _LIST_TRANSITIONS.fetch(conn, version_id=version_id, limit=limit, offset=offset)
    total = await _COUNT_TRANSITIONS.fetchval(conn, version_id=version_id)
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

_V, _M = VERSIONS, MODELS
_POLICIES = _table(PromotionPolicy)
_REQUESTS = _table(PromotionRequest)
_APPROVALS = _table(PromotionApproval)
_RULES = (
    "require_staging",
    "approvals_required",
    "forbid_author_approval",
    "metric_gate",
    "updated_by",
    "updated_at",
)
# The model's own policy before its project's: `false` sorts first.
_OVERRIDE_FIRST = _POLICIES.c.model_id.is_(None)


def _policy_applies(project_id: ColumnElement, model_id: ColumnElement) -> ColumnElement[bool]:
    return and_(
        _POLICIES.c.project_id == project_id,
        or_(_POLICIES.c.model_id == model_id, _POLICIES.c.model_id.is_(None)),
    )


_POLICY_FOR_VERSION = Statement(
    select(
        _M.c.project_id,
        _V.c.model_id,
        _POLICIES.c.id.label("policy_id"),
        _POLICIES.c.model_id.label("policy_model_id"),
        *(_POLICIES.c[r] for r in _RULES),
    )
    .select_from(
        _V.join(_M, _M.c.id == _V.c.model_id).outerjoin(
            _POLICIES, _policy_applies(_M.c.project_id, _M.c.id)
        )
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
    select(_POLICIES).where(
        _POLICIES.c.project_id == bindparam("project_id"), _POLICIES.c.model_id.is_(None)
    )
)


def _upsert_policy(where: ColumnElement[bool], key: str) -> Statement:
    inserted = pg_insert(_POLICIES).values({c.name: bindparam(c.name) for c in _POLICIES.c})
    return Statement(
        inserted.on_conflict_do_update(
            index_elements=[key],
            index_where=where,
            set_={name: inserted.excluded[name] for name in _RULES},
        ).returning(_POLICIES)
    )


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
    return await statement.fetchone(conn, **values)


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


def _close_request(*where: ColumnElement[bool], status: ColumnElement[str]) -> Statement:
    return Statement(
        update(_REQUESTS)
        .where(*where)
        .values(
            status=status,
            closed_by=bindparam("closed_by"),
            closed_at=bindparam("closed_at"),
            reason=bindparam("reason"),
        )
        .returning(_REQUESTS)
    )


_CLOSE_REQUEST = _close_request(
    _REQUESTS.c.id == bindparam("request_id"), status=bindparam("status")
)
_SUPERSEDE_REQUEST = _close_request(
    _REQUESTS.c.version_id == bindparam("version_id"),
    _REQUESTS.c.status == literal_column("'pending'"),
    status=literal_column("'superseded'"),
)
# The approval and its event, one statement: the event is written before those of the move
# that the approval may make next. `approvals` counts this one (a CTE sees the table before).
_APPROVAL_FILL = {"approvals": "approvals"}


def _insert_approval() -> Statement:
    given = ("request_id", "approver", "comment", "approved_at")
    earlier = alias(_APPROVALS, "earlier")
    approvals = select(func.count()).where(earlier.c.request_id == _param(_APPROVALS.c.request_id))
    approval = (
        pg_insert(_APPROVALS)
        .values({name: _param(_APPROVALS.c[name]) for name in given})
        .on_conflict_do_nothing()
        .returning(*_APPROVALS.c, (ONE + approvals.scalar_subquery()).label("approvals"))
        .cte("approval")
    )
    return Statement(
        select(*approval.c).add_cte(events_written_by(OUTBOX, approval, _APPROVAL_FILL))
    )


_INSERT_APPROVAL = _insert_approval()
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
        or_(
            given("projects", ARRAY(Uuid)).is_(None),
            r.project_id == any_(given("projects", ARRAY(Uuid))),
        ),
        or_(given("model_id", Uuid).is_(None), r.model_id == given("model_id", Uuid)),
        or_(given("version_id", Uuid).is_(None), r.version_id == given("version_id", Uuid)),
        or_(given("status", String).is_(None), r.status == given("status", String)),
    ]


_LIST_REQUESTS = Statement(
    select(_REQUESTS)
    .where(*_requests_matching())
    .order_by(_REQUESTS.c.seq.desc())
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_COUNT_REQUESTS = Statement(
    select(func.count()).select_from(_REQUESTS).where(*_requests_matching())
)


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
    conn: asyncpg.Connection,
    request_id: UUID,
    *,
    status: str,
    closed_by: str,
    closed_at: datetime,
    reason: str | None,
) -> Record:
    return await _CLOSE_REQUEST.fetchone(
        conn,
        request_id=request_id,
        status=status,
        closed_by=closed_by,
        closed_at=closed_at,
        reason=reason,
    )


async def supersede_pending_request(
    conn: asyncpg.Connection, version_id: UUID, *, closed_by: str, closed_at: datetime, reason: str
) -> Record | None:
    """The version's pending request, closed as superseded; None when it had none."""
    return await _SUPERSEDE_REQUEST.fetchrow(
        conn, version_id=version_id, closed_by=closed_by, closed_at=closed_at, reason=reason
    )


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
    conn: asyncpg.Connection,
    *,
    projects: Collection[UUID] | None,
    model_id: UUID | None,
    version_id: UUID | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Record], int]:
    """A page of the requests matching, newest first, and how many match."""
    filters = {
        "projects": None if projects is None else list(projects),
        "model_id": model_id,
        "version_id": version_id,
        "status": status,
    }
    items = await _LIST_REQUESTS.fetch(conn, **filters, limit=limit, offset=offset)
    return items, await _COUNT_REQUESTS.fetchval(conn, **filters)
