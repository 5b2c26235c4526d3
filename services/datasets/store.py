"""The datasets service's queries: SQLAlchemy from models.py on `uow.session`.

The house's default style (STYLE.md habit 12): one handle per function, the session, and none
commits: the unit of work does.
"""

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.datasets.models import (
    DatasetRecord,
    DatasetVersion,
    DatasetVersionUse,
    IntegrationConfig,
)
from shared.db import substring_pattern
from shared.events.gateway import IntegrationConfigChanged
from shared.integration_configs import keep_change
from shared.integrations import Concern

# Datasets


async def insert_dataset(session: AsyncSession, values: dict[str, Any]) -> DatasetRecord | None:
    """The new dataset, or None when its project has one by that name."""
    stmt = (
        insert(DatasetRecord)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["project_id", "name"])
        .returning(DatasetRecord)
    )
    return (await session.scalars(stmt)).one_or_none()


async def get_dataset(
    session: AsyncSession, dataset_id: UUID, *, lock: bool = False
) -> DatasetRecord | None:
    stmt = select(DatasetRecord).where(DatasetRecord.id == dataset_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def list_datasets(
    session: AsyncSession,
    projects: Collection[UUID] | None,
    limit: int,
    offset: int,
    name: str | None = None,
) -> tuple[Sequence[DatasetRecord], int]:
    """Datasets of `projects` (None: of every project) whose name holds `name`, by name."""
    where = [] if projects is None else [DatasetRecord.project_id.in_(list(projects))]
    if name:
        where.append(DatasetRecord.name.ilike(substring_pattern(name)))
    total = await session.scalar(select(func.count()).select_from(DatasetRecord).where(*where))
    stmt = (
        select(DatasetRecord)
        .where(*where)
        .order_by(DatasetRecord.name, DatasetRecord.id)
        .limit(limit)
        .offset(offset)
    )
    return (await session.scalars(stmt)).all(), total or 0


# Versions


async def insert_version(session: AsyncSession, values: dict[str, Any]) -> DatasetVersion | None:
    """The new version, or None when its dataset has one of that content or tag."""
    stmt = (
        insert(DatasetVersion).values(**values).on_conflict_do_nothing().returning(DatasetVersion)
    )
    return (await session.scalars(stmt)).one_or_none()


async def get_version(
    session: AsyncSession, version_id: UUID, *, lock: bool = False
) -> DatasetVersion | None:
    stmt = select(DatasetVersion).where(DatasetVersion.id == version_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def find_version(
    session: AsyncSession, dataset_id: UUID, content_hash: str
) -> DatasetVersion | None:
    """The dataset's version with DVC content hash `content_hash`."""
    stmt = select(DatasetVersion).where(
        DatasetVersion.dataset_id == dataset_id, DatasetVersion.version_id == content_hash
    )
    return (await session.scalars(stmt)).one_or_none()


async def find_tagged(session: AsyncSession, dataset_id: UUID, tag: str) -> DatasetVersion | None:
    stmt = select(DatasetVersion).where(
        DatasetVersion.dataset_id == dataset_id, DatasetVersion.version_tag == tag
    )
    return (await session.scalars(stmt)).one_or_none()


async def versions_of(
    session: AsyncSession, dataset_id: UUID, limit: int | None = None, offset: int = 0
) -> tuple[Sequence[DatasetVersion], int]:
    """The dataset's versions, oldest first."""
    where = [DatasetVersion.dataset_id == dataset_id]
    total = await session.scalar(select(func.count()).select_from(DatasetVersion).where(*where))
    stmt = (
        select(DatasetVersion)
        .where(*where)
        .order_by(DatasetVersion.created_at, DatasetVersion.id)
        .offset(offset)
    )
    if limit is not None:
        stmt = stmt.limit(limit)
    return (await session.scalars(stmt)).all(), total or 0


def touch(entity: Any, now: datetime, **changes: Any) -> None:
    """Set fields of a loaded row and its `updated_at`; the unit of work flushes them."""
    for key, value in changes.items():
        setattr(entity, key, value)
    entity.updated_at = now


# Jobs that used versions


async def known_versions(session: AsyncSession, ids: Collection[UUID]) -> list[UUID]:
    """Those of `ids` that are versions here."""
    stmt = select(DatasetVersion.id).where(DatasetVersion.id.in_(list(ids)))
    return list((await session.scalars(stmt)).all())


async def put_uses(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Record each (version, job) link once; a repeat updates the job's status."""
    if not rows:
        return
    stmt = insert(DatasetVersionUse).values(list(rows))
    stmt = stmt.on_conflict_do_update(
        index_elements=["dataset_version_id", "job_id"],
        set_={"job_status": stmt.excluded.job_status, "updated_at": stmt.excluded.updated_at},
    )
    await session.execute(stmt)


async def set_job_status(session: AsyncSession, job_id: UUID, status: str, at: datetime) -> None:
    await session.execute(
        update(DatasetVersionUse)
        .where(DatasetVersionUse.job_id == job_id)
        .values(job_status=status, updated_at=at)
    )


async def uses_of(session: AsyncSession, version_id: UUID) -> Sequence[DatasetVersionUse]:
    stmt = (
        select(DatasetVersionUse)
        .where(DatasetVersionUse.dataset_version_id == version_id)
        .order_by(DatasetVersionUse.first_seen_at, DatasetVersionUse.job_id)
    )
    return (await session.scalars(stmt)).all()


# The env's DVC remote (the gateway's IntegrationConfig, from its events)


async def put_integration_config(session: AsyncSession, change: IntegrationConfigChanged) -> bool:
    """Keep the config unless the stored one is newer; False when it was older (arrived late)."""
    return await keep_change(session, IntegrationConfig, change)


async def remote_config(session: AsyncSession, env: str) -> IntegrationConfig | None:
    return await session.get(IntegrationConfig, (env, Concern.DATASET_VERSIONING.value))
