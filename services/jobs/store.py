"""The jobs service's queries: SQLAlchemy (ORM and Core) from models.py on `uow.session`.

The house's default style (STYLE.md habit 12): one handle per function, the session, and none
commits; no query here is hot enough for asyncpg `Statement`s.
"""

from collections.abc import Collection, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.jobs.domain import DATASET_VERSION_RANK, JobStatus
from services.jobs.models import (
    DatasetVersionSeen,
    ExperimentRun,
    GpuTypeOption,
    IntegrationConfig,
    TrainingJob,
)
from shared.events.gateway import IntegrationConfigChanged
from shared.integration_configs import keep_change


async def insert_gpu_type(session: AsyncSession, values: dict[str, Any]) -> GpuTypeOption | None:
    """The new option, or None when its env already has an option with that id."""
    stmt = (
        insert(GpuTypeOption)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["env", "id"])
        .returning(GpuTypeOption)
    )
    return (await session.scalars(stmt)).one_or_none()


async def lock_gpu_type(session: AsyncSession, env: str, gpu_type_id: str) -> GpuTypeOption | None:
    stmt = (
        select(GpuTypeOption)
        .where(GpuTypeOption.env == env, GpuTypeOption.id == gpu_type_id)
        .with_for_update()
    )
    return (await session.scalars(stmt)).one_or_none()


async def delete_gpu_type(session: AsyncSession, env: str, gpu_type_id: str) -> None:
    await session.execute(
        delete(GpuTypeOption).where(GpuTypeOption.env == env, GpuTypeOption.id == gpu_type_id)
    )


async def list_gpu_types(
    session: AsyncSession, env: str | None, include_disabled: bool
) -> Sequence[GpuTypeOption]:
    conditions: list[ColumnElement[bool]] = []
    if env is not None:
        conditions.append(GpuTypeOption.env == env)
    if not include_disabled:
        conditions.append(GpuTypeOption.enabled.is_(True))
    stmt = (
        select(GpuTypeOption)
        .where(*conditions)
        .order_by(GpuTypeOption.priority, GpuTypeOption.label, GpuTypeOption.env, GpuTypeOption.id)
    )
    return (await session.scalars(stmt)).all()


async def enabled_gpu_types(session: AsyncSession, env: str) -> dict[str, GpuTypeOption]:
    return {o.id: o for o in await list_gpu_types(session, env, include_disabled=False)}


async def get_gpu_type(session: AsyncSession, env: str, gpu_type_id: str) -> GpuTypeOption | None:
    return await session.get(GpuTypeOption, (env, gpu_type_id))


async def insert_job(session: AsyncSession, values: dict[str, Any]) -> TrainingJob:
    job = TrainingJob(**values)
    session.add(job)
    await session.flush()
    await session.refresh(job)
    return job


async def get_job(session: AsyncSession, job_id: UUID) -> TrainingJob | None:
    return await session.get(TrainingJob, job_id)


async def lock_job(
    session: AsyncSession, job_id: UUID, *, skip_locked: bool = False
) -> TrainingJob | None:
    stmt = (
        select(TrainingJob)
        .where(TrainingJob.id == job_id)
        .with_for_update(skip_locked=skip_locked)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one_or_none()


async def job_of_stage_attempt(
    session: AsyncSession, pipeline_run_id: UUID, stage: str, attempt: int
) -> TrainingJob | None:
    stmt = select(TrainingJob).where(
        TrainingJob.pipeline_run_id == pipeline_run_id,
        TrainingJob.pipeline_stage == stage,
        TrainingJob.pipeline_attempt == attempt,
    )
    return (await session.scalars(stmt)).one_or_none()


async def job_ids_in(session: AsyncSession, status: JobStatus) -> list[UUID]:
    stmt = (
        select(TrainingJob.id)
        .where(TrainingJob.status == status.value)
        .order_by(TrainingJob.created_at)
    )
    return list((await session.scalars(stmt)).all())


async def find_jobs(
    session: AsyncSession,
    *,
    projects: Collection[UUID] | None,
    status: JobStatus | None,
    pipeline_run_id: UUID | None = None,
    tracking_run_id: str | None = None,
    limit: int,
    offset: int,
) -> tuple[Sequence[TrainingJob], int]:
    """A page of the jobs in `projects` (None: every project) that match, and their count."""
    conditions: list[ColumnElement[bool]] = []
    if tracking_run_id is not None:
        conditions.append(
            TrainingJob.id.in_(
                select(ExperimentRun.job_id).where(ExperimentRun.tracking_run_id == tracking_run_id)
            )
        )
    if projects is not None:
        conditions.append(TrainingJob.project_id.in_(list(projects)))
    if pipeline_run_id is not None:
        conditions.append(TrainingJob.pipeline_run_id == pipeline_run_id)
    if status is not None:
        conditions.append(TrainingJob.status == status.value)
    items = await session.scalars(
        select(TrainingJob)
        .where(*conditions)
        .order_by(TrainingJob.created_at.desc(), TrainingJob.id)
        .limit(limit)
        .offset(offset)
    )
    total = await session.scalar(select(func.count()).select_from(TrainingJob).where(*conditions))
    return items.all(), total or 0


async def insert_run(session: AsyncSession, values: dict[str, Any]) -> ExperimentRun:
    run = ExperimentRun(**values)
    session.add(run)
    await session.flush()
    return run


async def run_of_job(session: AsyncSession, job_id: UUID) -> ExperimentRun | None:
    return (
        await session.scalars(select(ExperimentRun).where(ExperimentRun.job_id == job_id))
    ).one_or_none()


async def runs_of_jobs(session: AsyncSession, job_ids: Sequence[UUID]) -> dict[UUID, ExperimentRun]:
    if not job_ids:
        return {}
    runs = await session.scalars(select(ExperimentRun).where(ExperimentRun.job_id.in_(job_ids)))
    return {r.job_id: r for r in runs}


async def update_run(session: AsyncSession, run_id: UUID, changes: dict[str, Any]) -> ExperimentRun:
    """The run as it is after the changes."""
    stmt = (
        update(ExperimentRun)
        .where(ExperimentRun.id == run_id)
        .values(**changes)
        .returning(ExperimentRun)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(stmt)).one()


async def get_integration_config(
    session: AsyncSession, env: str, concern: str
) -> IntegrationConfig | None:
    return await session.get(IntegrationConfig, (env, concern))


async def put_integration_config(session: AsyncSession, change: IntegrationConfigChanged) -> bool:
    """Keep the config unless the stored one is newer; False when it was older (arrived late)."""
    return await keep_change(session, IntegrationConfig, change)


async def dataset_version_states(session: AsyncSession, ids: Collection[UUID]) -> dict[UUID, str]:
    """The state of each of `ids` the datasets service's events announced."""
    if not ids:
        return {}
    stmt = select(DatasetVersionSeen.dataset_version_id, DatasetVersionSeen.state).where(
        DatasetVersionSeen.dataset_version_id.in_(list(ids))
    )
    return {row.dataset_version_id: row.state for row in await session.execute(stmt)}


async def put_dataset_version(session: AsyncSession, values: dict[str, Any]) -> None:
    """Insert the version, or keep whichever of its stored and new states ranks higher
    (`DATASET_VERSION_RANK`), decided in the statement so concurrent consumers agree."""
    stmt = insert(DatasetVersionSeen).values(**values)
    rank = {state.value: r for state, r in DATASET_VERSION_RANK.items()}
    stored = DatasetVersionSeen.state
    keep = case(
        (case(rank, value=stored) >= case(rank, value=stmt.excluded.state), stored),
        else_=stmt.excluded.state,
    )
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=["dataset_version_id"], set_={"state": keep, "updated_at": func.now()}
        )
    )
