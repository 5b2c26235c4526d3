"""The pipelines service's queries: SQLAlchemy from models.py on `uow.session`, and the
run's rows read as the engine's RunState and written back from a plan.

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

from services.pipelines.domain import (
    OrchestrationSystem,
    RunStatus,
    StageStatus,
    parse_definition,
)
from services.pipelines.engine import Plan, RunState, StageState
from services.pipelines.models import (
    IntegrationConfig,
    PipelineDefinitionVersion,
    PipelineRun,
    PipelineRunStage,
    WorkflowPipeline,
)
from shared.integration_configs import keep_newest

# The run's columns the engine's state changes; the rest are fixed when the run is created.
RUN_STATE_COLUMNS = ("status", "current_stage", "retry_count", "start_time", "end_time")
STAGE_STATE_COLUMNS = (
    "status",
    "attempt",
    "failures",
    "job_id",
    "outputs",
    "reason",
    "started_at",
    "ended_at",
    "deadline",
)


async def insert_pipeline(session: AsyncSession, values: dict[str, Any]) -> WorkflowPipeline | None:
    """The new pipeline, or None when its project has one by that name."""
    stmt = (
        insert(WorkflowPipeline)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["project_id", "name"])
        .returning(WorkflowPipeline)
    )
    return (await session.scalars(stmt)).one_or_none()


async def get_pipeline(
    session: AsyncSession, pipeline_id: UUID, *, lock: bool = False
) -> WorkflowPipeline | None:
    stmt = select(WorkflowPipeline).where(WorkflowPipeline.id == pipeline_id)
    if lock:
        stmt = stmt.with_for_update()
    return (await session.scalars(stmt)).one_or_none()


async def list_pipelines(
    session: AsyncSession, projects: Collection[UUID] | None, limit: int, offset: int
) -> tuple[Sequence[WorkflowPipeline], int]:
    """A page of the pipelines in `projects` (None: every project), and their count."""
    where = [] if projects is None else [WorkflowPipeline.project_id.in_(list(projects))]
    total = await session.scalar(select(func.count()).select_from(WorkflowPipeline).where(*where))
    stmt = (
        select(WorkflowPipeline)
        .where(*where)
        .order_by(WorkflowPipeline.name, WorkflowPipeline.id)
        .limit(limit)
        .offset(offset)
    )
    return (await session.scalars(stmt)).all(), total or 0


async def insert_definition(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(PipelineDefinitionVersion).values(**values))


async def get_definition(
    session: AsyncSession, pipeline_id: UUID, version: int
) -> PipelineDefinitionVersion | None:
    stmt = select(PipelineDefinitionVersion).where(
        PipelineDefinitionVersion.pipeline_id == pipeline_id,
        PipelineDefinitionVersion.version == version,
    )
    return (await session.scalars(stmt)).one_or_none()


async def list_definitions(
    session: AsyncSession, pipeline_id: UUID
) -> Sequence[PipelineDefinitionVersion]:
    stmt = (
        select(PipelineDefinitionVersion)
        .where(PipelineDefinitionVersion.pipeline_id == pipeline_id)
        .order_by(PipelineDefinitionVersion.version)
    )
    return (await session.scalars(stmt)).all()


async def set_latest_version(session: AsyncSession, pipeline_id: UUID, version: int) -> None:
    await session.execute(
        update(WorkflowPipeline)
        .where(WorkflowPipeline.id == pipeline_id)
        .values(latest_version=version, updated_at=func.now())
    )


# ---- runs ----------------------------------------------------------------------------------


async def insert_run(
    session: AsyncSession, run: RunState, *, workflow_id: str, workflow_namespace: str
) -> None:
    await session.execute(
        insert(PipelineRun).values(
            id=run.id,
            pipeline_id=run.pipeline_id,
            pipeline_name=run.pipeline_name,
            project_id=run.project_id,
            env=run.env,
            definition_version=run.definition_version,
            pipeline_definition=run.definition.to_dict(),
            parameters=dict(run.parameters),
            orchestration_system=str(run.orchestration_system),
            workflow_id=workflow_id,
            workflow_namespace=workflow_namespace,
            max_retries=run.max_retries,
            started_by=run.started_by,
            **_run_state(run),
        )
    )
    await session.execute(
        insert(PipelineRunStage),
        [
            {
                "run_id": run.id,
                "name": spec.name,
                "position": position,
                "kind": str(spec.kind),
                **_stage_state(run.stage(spec.name)),
            }
            for position, spec in enumerate(run.definition.stages)
        ],
    )


async def lock_run(session: AsyncSession, run_id: UUID) -> RunState | None:
    """The run as the engine plans from it, its row locked until the unit of work ends: the
    answers about one run are planned one after another."""
    row = (
        await session.scalars(select(PipelineRun).where(PipelineRun.id == run_id).with_for_update())
    ).one_or_none()
    if row is None:
        return None
    stages = await run_stages(session, run_id)
    return run_state(row, stages)


async def read_one_snapshot(session: AsyncSession) -> None:
    """The session's reads that follow see one snapshot: a run and its stages as one commit
    left them, not the run before a plan and its stages after."""
    await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


async def get_run(session: AsyncSession, run_id: UUID) -> PipelineRun | None:
    return (
        await session.scalars(select(PipelineRun).where(PipelineRun.id == run_id))
    ).one_or_none()


async def run_stages(session: AsyncSession, run_id: UUID) -> Sequence[PipelineRunStage]:
    stmt = (
        select(PipelineRunStage)
        .where(PipelineRunStage.run_id == run_id)
        .order_by(PipelineRunStage.position)
    )
    return (await session.scalars(stmt)).all()


async def list_runs(
    session: AsyncSession, pipeline_id: UUID, status: str | None, limit: int, offset: int
) -> tuple[Sequence[PipelineRun], int]:
    where = [PipelineRun.pipeline_id == pipeline_id]
    if status is not None:
        where.append(PipelineRun.status == status)
    total = await session.scalar(select(func.count()).select_from(PipelineRun).where(*where))
    stmt = (
        select(PipelineRun)
        .where(*where)
        .order_by(PipelineRun.created_at.desc(), PipelineRun.id)
        .limit(limit)
        .offset(offset)
    )
    return (await session.scalars(stmt)).all(), total or 0


async def active_runs(session: AsyncSession, system: str) -> list[tuple[UUID, str]]:
    """(run id, workflow id) of every run of `system` that has not finished."""
    finished = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED]
    stmt = (
        select(PipelineRun.id, PipelineRun.workflow_id)
        .where(PipelineRun.orchestration_system == system, PipelineRun.status.not_in(finished))
        .order_by(PipelineRun.created_at)
    )
    return [(row.id, row.workflow_id) for row in await session.execute(stmt)]


async def runs_past_deadline(session: AsyncSession, now: datetime) -> list[UUID]:
    """Runs with a stage at work past its timeout: the sweep plans a Tick for each."""
    stmt = (
        select(PipelineRunStage.run_id)
        .distinct()
        .where(
            PipelineRunStage.deadline.is_not(None),
            PipelineRunStage.deadline <= now,
            PipelineRunStage.status.in_([StageStatus.REQUESTED, StageStatus.RUNNING]),
        )
    )
    return list((await session.scalars(stmt)).all())


async def save_plan(session: AsyncSession, plan: Plan) -> None:
    """Write what the plan changed: the run's state and each changed stage."""
    run = plan.run
    await session.execute(
        update(PipelineRun)
        .where(PipelineRun.id == run.id)
        .values(**_run_state(run), updated_at=func.now())
    )
    for name in plan.changed_stages:
        await session.execute(
            update(PipelineRunStage)
            .where(PipelineRunStage.run_id == run.id, PipelineRunStage.name == name)
            .values(**_stage_state(run.stage(name)))
        )


def _run_state(run: RunState) -> dict[str, Any]:
    return {
        "status": str(run.status),
        "current_stage": run.current_stage,
        "retry_count": run.retry_count,
        "start_time": run.start_time,
        "end_time": run.end_time,
    }


def _stage_state(stage: StageState) -> dict[str, Any]:
    return {
        "status": str(stage.status),
        "attempt": stage.attempt,
        "failures": stage.failures,
        "job_id": stage.job_id,
        "outputs": dict(stage.outputs),
        "reason": stage.reason,
        "started_at": stage.started_at,
        "ended_at": stage.ended_at,
        "deadline": stage.deadline,
    }


def run_state(row: PipelineRun, stages: Sequence[PipelineRunStage]) -> RunState:
    return RunState(
        id=row.id,
        pipeline_id=row.pipeline_id,
        pipeline_name=row.pipeline_name,
        project_id=row.project_id,
        env=row.env,
        definition=parse_definition(row.pipeline_definition),
        definition_version=row.definition_version,
        parameters=row.parameters,
        started_by=row.started_by,
        status=RunStatus(row.status),
        stages={
            s.name: StageState(
                name=s.name,
                status=StageStatus(s.status),
                attempt=s.attempt,
                failures=s.failures,
                job_id=s.job_id,
                outputs=s.outputs,
                reason=s.reason,
                started_at=s.started_at,
                ended_at=s.ended_at,
                deadline=s.deadline,
            )
            for s in stages
        },
        current_stage=row.current_stage,
        retry_count=row.retry_count,
        max_retries=row.max_retries,
        start_time=row.start_time,
        end_time=row.end_time,
        orchestration_system=OrchestrationSystem(row.orchestration_system),
    )


# ---- which system runs each env's pipelines ------------------------------------------------


async def put_integration_config(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Keep the config unless the stored one is newer; False when it was older (arrived late)."""
    return await keep_newest(session, IntegrationConfig, values)


async def configured_backend(session: AsyncSession, env: str, concern: str) -> str | None:
    stmt = select(IntegrationConfig.backend).where(
        IntegrationConfig.env == env, IntegrationConfig.concern == concern
    )
    return (await session.scalars(stmt)).one_or_none()
