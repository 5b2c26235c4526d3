"""The registry's queries. Nothing here commits: the unit of work does."""

import base64
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import DateTime, Row, String, bindparam, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services.registry.domain import ModelStage
from services.registry.models import (
    ModelVersion,
    ModelVersionTransition,
    RegisteredModel,
    VersionCount,
)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(str(seq).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        return None


async def insert_model(session: AsyncSession, values: dict[str, Any]) -> RegisteredModel | None:
    """The new model, or None when its project already has a model of that name."""
    stmt = (
        insert(RegisteredModel)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_registered_models_project_id_name")
        .returning(RegisteredModel)
    )
    return (await session.scalars(stmt)).one_or_none()


async def get_model(session: AsyncSession, model_id: UUID) -> RegisteredModel | None:
    return await session.get(RegisteredModel, model_id)


async def lock_model(session: AsyncSession, model_id: UUID) -> RegisteredModel | None:
    """The model, row-locked: writes that must see its versions stand still are serialised."""
    stmt = select(RegisteredModel).where(RegisteredModel.id == model_id).with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def find_models(
    session: AsyncSession,
    *,
    project_id: UUID | None,
    name: str | None,
    tags: dict[str, str],
    tag_keys: Sequence[str],
    limit: int,
    offset: int,
) -> tuple[Sequence[RegisteredModel], int]:
    conditions = []
    if project_id is not None:
        conditions.append(RegisteredModel.project_id == project_id)
    if name:
        pattern = "%" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(RegisteredModel.name.ilike(pattern))
    if tags:
        conditions.append(RegisteredModel.tags.contains(tags))
    for key in tag_keys:
        conditions.append(RegisteredModel.tags.has_key(key))
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


async def delete_model(session: AsyncSession, model_id: UUID) -> int:
    """Delete the model; its versions and their history go with it (ON DELETE CASCADE)."""
    versions = await count_versions(session, model_id)
    await session.execute(delete(RegisteredModel).where(RegisteredModel.id == model_id))
    return versions


# Creating a version is the registry's busiest write: the counter bump and the insert are one
# statement (one round trip). `metadata AS meta` keeps the ORM attribute name.
_INSERT_NUMBERED_VERSION = text("""
    WITH model AS (
        UPDATE registry.registered_models SET version_counter = version_counter + 1
        WHERE id = :model_id
        RETURNING version_counter, name
    )
    INSERT INTO registry.model_versions (
        id, model_id, version, stage, description, run_id, artifact_version_id, artifact_uri,
        metrics, tags, metadata, created_by
    )
    SELECT :id, :model_id, coalesce(:version, model.version_counter::text), :stage, :description,
           :run_id, :artifact_version_id, :artifact_uri, :metrics, :tags, :metadata, :created_by
    FROM model
    ON CONFLICT (model_id, version) DO NOTHING
    RETURNING *, metadata AS meta, (SELECT name FROM model) AS model_name
""").bindparams(
    bindparam("metrics", type_=JSONB), bindparam("tags", type_=JSONB),
    bindparam("metadata", type_=JSONB), bindparam("version", type_=String),
)


async def insert_numbered_version(session: AsyncSession, values: dict[str, Any]) -> Row | None:
    """Bump the model's counter (locking its row) and insert the version, labelled
    `values["version"]` or else the new number; the row carries `model_name`. None when the
    model does not exist or the label is taken (the bump is then kept: the row stays locked)."""
    return (await session.execute(_INSERT_NUMBERED_VERSION, values)).one_or_none()


async def get_version(session: AsyncSession, version_id: UUID) -> ModelVersion | None:
    return await session.get(ModelVersion, version_id)


async def get_version_by_label(
    session: AsyncSession, model_id: UUID, label: str
) -> ModelVersion | None:
    stmt = select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == label)
    return (await session.scalars(stmt)).one_or_none()


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


# Transitions, the other busy write, use Core statements: rows, not ORM objects to track.
_versions = ModelVersion.__table__
_VERSION_ROW = (*(c for c in _versions.c if c.name != "metadata"), _versions.c["metadata"].label("meta"))


async def lock_for_transition(session: AsyncSession, version_id: UUID) -> Row | None:
    """The version with its model's name, both rows locked: the model's transitions queue."""
    models = RegisteredModel.__table__
    stmt = (
        select(*_VERSION_ROW, models.c.name.label("model_name"))
        .join(models, models.c.id == _versions.c.model_id)
        .where(_versions.c.id == version_id)
        .with_for_update()
    )  # fmt: skip
    return (await session.execute(stmt)).one_or_none()


async def latest_in_stage(session: AsyncSession, model_id: UUID, stage: ModelStage) -> Row | None:
    """The newest version of the model in the stage."""
    stmt = (
        select(*_VERSION_ROW)
        .where(_versions.c.model_id == model_id, _versions.c.stage == stage.value)
        .order_by(_versions.c.seq.desc())
        .limit(1)
    )
    return (await session.execute(stmt)).one_or_none()


_MOVE = (
    update(_versions)
    .where(_versions.c.id == bindparam("version_id"))
    .values(
        stage=bindparam("stage"),
        updated_at=bindparam("at"),
        approved_by=func.coalesce(bindparam("approved_by", type_=String), _versions.c.approved_by),
        approved_at=func.coalesce(
            bindparam("approved_at", type_=DateTime(timezone=True)), _versions.c.approved_at
        ),
    )
)


async def move_versions(session: AsyncSession, moves: list[dict[str, Any]]) -> None:
    """Set each version's stage (and approval, where given), one move after another in the
    order given, in one round trip."""
    await session.execute(_MOVE, moves)


async def count_versions(
    session: AsyncSession, model_id: UUID, stage: ModelStage | None = None
) -> int:
    """From the counts the database keeps per model and stage: the same cost at any size."""
    stmt = select(func.sum(VersionCount.n)).where(VersionCount.model_id == model_id)
    if stage is not None:
        stmt = stmt.where(VersionCount.stage == stage)
    return await session.scalar(stmt) or 0


async def list_versions(
    session: AsyncSession,
    model_id: UUID,
    *,
    stage: ModelStage | None,
    limit: int,
    before_seq: int | None,
) -> Sequence[ModelVersion]:
    """Newest first; keyset pagination on `seq`, so page 1000 costs what page 1 does."""
    stmt = select(ModelVersion).where(ModelVersion.model_id == model_id)
    if stage is not None:
        stmt = stmt.where(ModelVersion.stage == stage)
    if before_seq is not None:
        stmt = stmt.where(ModelVersion.seq < before_seq)
    stmt = stmt.order_by(ModelVersion.seq.desc()).limit(limit)
    return (await session.scalars(stmt)).all()


async def delete_version(session: AsyncSession, version_id: UUID) -> None:
    await session.execute(delete(ModelVersion).where(ModelVersion.id == version_id))


async def insert_transitions(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    # Rows as parameters, not in the statement: its compiled form is cached, one round trip.
    await session.execute(insert(ModelVersionTransition.__table__), rows)


async def list_transitions(
    session: AsyncSession, version_id: UUID, *, limit: int, offset: int
) -> tuple[Sequence[ModelVersionTransition], int]:
    items = await session.scalars(
        select(ModelVersionTransition)
        .where(ModelVersionTransition.version_id == version_id)
        .order_by(ModelVersionTransition.seq.desc())
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(
        select(func.count())
        .select_from(ModelVersionTransition)
        .where(ModelVersionTransition.version_id == version_id)
    )
    return items.all(), total or 0


async def summarize(
    session: AsyncSession, *, project_id: UUID | None, limit: int, offset: int
) -> tuple[list[Row], int, dict[str, int]]:
    """Per-model version counts by stage, plus the totals over every model selected."""
    v = ModelVersion
    per_stage = {
        stage: func.count(v.id).filter(v.stage == stage.value).label(stage.value)
        for stage in ModelStage
    }
    newest = aliased(ModelVersion)
    latest = (
        select(newest.version)
        .where(newest.model_id == RegisteredModel.id)
        .order_by(newest.seq.desc())
        .limit(1)
        .correlate(RegisteredModel)
    ).scalar_subquery()
    serving = aliased(ModelVersion)
    production = (
        select(serving.version)
        .where(serving.model_id == RegisteredModel.id, serving.stage == ModelStage.PRODUCTION.value)
        .correlate(RegisteredModel)
    ).scalar_subquery()
    where = [] if project_id is None else [RegisteredModel.project_id == project_id]
    rows = (
        await session.execute(
            select(
                RegisteredModel.id,
                RegisteredModel.name,
                RegisteredModel.project_id,
                RegisteredModel.updated_at,
                func.count(v.id).label("versions"),
                *per_stage.values(),
                latest.label("latest_version"),
                production.label("production_version"),
            )
            .outerjoin(v, v.model_id == RegisteredModel.id)
            .where(*where)
            .group_by(RegisteredModel.id)
            .order_by(RegisteredModel.name, RegisteredModel.id)
            .limit(limit)
            .offset(offset)
        )
    ).all()
    totals_stmt = select(
        func.count(func.distinct(RegisteredModel.id)).label("models"),
        func.count(v.id).label("versions"),
        *per_stage.values(),
    ).outerjoin(v, v.model_id == RegisteredModel.id).where(*where)
    totals = (await session.execute(totals_stmt)).one()._mapping
    return list(rows), totals["models"], {k: totals[k] for k in ["versions", *ModelStage]}
