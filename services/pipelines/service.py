"""The pipelines service's use cases, one unit of work each: a pipeline and its definitions, and
a run driven by the local engine, whose every plan (the run's new state, its events and the
commands to other services) commits in one transaction."""

import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from services.pipelines import store
from services.pipelines.domain import (
    OrchestrationSystem,
    PipelineDefinition,
    check_run_parameters,
    parse_definition,
    unapproved_promotions,
)
from services.pipelines.engine import (
    Answer,
    Approve,
    Cancel,
    Plan,
    Retry,
    RunState,
    Start,
    new_run,
    plan,
    reconcile,
)
from services.pipelines.errors import (
    ApproverNeeded,
    DefinitionVersionNotFound,
    PipelineNameTaken,
    PipelineNotFound,
    RetryUnsupported,
    RunNotFound,
)
from services.pipelines.integrations.argo import WorkflowObservation, workflow_name
from services.pipelines.models import WorkflowPipeline
from services.pipelines.schemas import PipelineCreate, RunCreate
from shared import context
from shared.db import UnitOfWork
from shared.events.gateway import IntegrationConfigChanged
from shared.events.pipelines import PipelineDefined
from shared.integrations import Concern

log = logging.getLogger(__name__)

# Where a local run's workflow is, in the data model's (system, id, namespace) triple.
LOCAL_NAMESPACE = "local"


def now() -> datetime:
    return datetime.now(UTC)


async def create_pipeline(uow: UnitOfWork, body: PipelineCreate, *, actor: str) -> WorkflowPipeline:
    definition = parse_definition(body.definition)
    pipeline = await store.insert_pipeline(
        uow.session,
        {
            "id": uuid4(),
            "name": body.name,
            "project_id": body.project_id,
            "description": body.description,
            "latest_version": 1,
            "created_by": actor,
        },
    )
    if pipeline is None:
        raise PipelineNameTaken(f"project {body.project_id} has a pipeline named '{body.name}'")
    await _keep_definition(uow, pipeline, 1, definition.to_dict(), actor)
    return pipeline


async def add_definition(
    uow: UnitOfWork, pipeline_id: UUID, raw: dict[str, Any], *, actor: str
) -> int:
    """A new version of the pipeline's definition; runs started later run it by default."""
    definition = parse_definition(raw)
    pipeline = await store.get_pipeline(uow.session, pipeline_id, lock=True)
    if pipeline is None:
        raise PipelineNotFound(f"no pipeline has id {pipeline_id}")
    version = pipeline.latest_version + 1
    await store.set_latest_version(uow.session, pipeline_id, version)
    await _keep_definition(uow, pipeline, version, definition.to_dict(), actor)
    return version


async def _keep_definition(
    uow: UnitOfWork,
    pipeline: WorkflowPipeline,
    version: int,
    definition: dict[str, Any],
    actor: str,
) -> None:
    await store.insert_definition(
        uow.session,
        {
            "pipeline_id": pipeline.id,
            "version": version,
            "definition": definition,
            "created_by": actor,
        },
    )
    uow.record(
        PipelineDefined(
            pipeline_id=pipeline.id,
            name=pipeline.name,
            project_id=pipeline.project_id,
            version=version,
            definition=definition,
            defined_by=actor,
        ),
        pipeline.id,
    )


async def apply_integration_config(uow: UnitOfWork, change: IntegrationConfigChanged) -> None:
    """Keep the newest orchestration choice of each env; runs started there afterwards use it."""
    applied = await store.put_integration_config(
        uow.session,
        {
            "env": change.env,
            "concern": change.concern,
            "backend": change.backend,
            "settings": change.settings,
            "changed_by": change.changed_by,
            "changed_at": change.changed_at,
        },
    )
    if not applied:
        log.info(
            "%s of %s changed at %s is older than the one kept; ignored",
            change.concern,
            change.env,
            change.changed_at,
        )


async def orchestration_of(
    session: AsyncSession, env: str, default: OrchestrationSystem
) -> OrchestrationSystem:
    """The env's IntegrationConfig says which system runs its pipelines; without one, `default`."""
    backend = await store.configured_backend(session, env, Concern.PIPELINE_ORCHESTRATION)
    return default if backend is None else OrchestrationSystem(backend)


async def start_run(
    uow: UnitOfWork,
    pipeline_id: UUID,
    body: RunCreate,
    *,
    actor: str,
    orchestration: OrchestrationSystem = OrchestrationSystem.LOCAL,
    workflow_namespace: str = LOCAL_NAMESPACE,
    may_approve: bool = True,
) -> UUID:
    """A run of the pipeline's chosen definition. On the local engine its first stages are asked
    for in the same commit; on Argo the workflow is submitted once this commits. A definition
    that promotes to production with no approve stage first is started by an approver only
    (`may_approve`)."""
    pipeline = await store.get_pipeline(uow.session, pipeline_id)
    if pipeline is None:
        raise PipelineNotFound(f"no pipeline has id {pipeline_id}")
    version = body.definition_version or pipeline.latest_version
    stored = await store.get_definition(uow.session, pipeline_id, version)
    if stored is None:
        raise DefinitionVersionNotFound(f"pipeline {pipeline_id} has no definition {version}")
    definition = parse_definition(stored.definition)
    check_run_parameters(definition, body.parameters)
    _check_approver(definition, actor, pipeline.project_id, may_approve)
    run = new_run(
        id=uuid4(),
        pipeline_id=pipeline.id,
        pipeline_name=pipeline.name,
        project_id=pipeline.project_id,
        env=body.env.value,
        definition=definition,
        definition_version=version,
        parameters=body.parameters,
        started_by=actor,
        max_retries=body.max_retries,
        orchestration_system=orchestration,
    )
    started = plan(run, Start(now()))
    workflow_id = (
        str(run.id)
        if orchestration == OrchestrationSystem.LOCAL
        else workflow_name(pipeline.name, run.id)
    )
    await store.insert_run(
        uow.session, started.run, workflow_id=workflow_id, workflow_namespace=workflow_namespace
    )
    _record(uow, started)
    return run.id


def _check_approver(
    definition: PipelineDefinition, actor: str, project_id: UUID, may_approve: bool
) -> None:
    unapproved = unapproved_promotions(definition)
    if unapproved and not may_approve:
        raise ApproverNeeded(
            f"stage(s) {', '.join(unapproved)} may promote to production and no approve stage "
            f"comes before them: {actor!r} is not an approver in project {project_id}"
        )


async def _locked_run(uow: UnitOfWork, pipeline_id: UUID, run_id: UUID) -> RunState:
    run = await store.lock_run(uow.session, run_id)
    if run is None or run.pipeline_id != pipeline_id:
        raise RunNotFound(f"pipeline {pipeline_id} has no run {run_id}")
    return run


async def cancel_run(uow: UnitOfWork, pipeline_id: UUID, run_id: UUID, *, actor: str) -> None:
    run = await _locked_run(uow, pipeline_id, run_id)
    result = plan(run, Cancel(actor, now()))
    if run.orchestration_system != OrchestrationSystem.LOCAL:
        result = replace(result, commands=())  # its orchestrator stops its pods itself
    await _apply(uow, result)


async def retry_run(
    uow: UnitOfWork, pipeline_id: UUID, run_id: UUID, *, actor: str, may_approve: bool = True
) -> None:
    """Retry a failed run; one that promotes to production with no approve stage first is
    retried by an approver only, as it is started."""
    run = await _locked_run(uow, pipeline_id, run_id)
    _check_approver(run.definition, actor, run.project_id, may_approve)
    if run.orchestration_system != OrchestrationSystem.LOCAL:
        raise RetryUnsupported(
            f"run {run_id} runs on {run.orchestration_system}; start a new run instead"
        )
    await _apply(uow, plan(run, Retry(actor, now())))


async def sync_run(uow: UnitOfWork, run_id: UUID, observation: WorkflowObservation) -> None:
    """Take over what the run's workflow reports, with the events of each change."""
    run = await store.lock_run(uow.session, run_id)
    if run is None or run.status.finished:
        return
    result = reconcile(
        run, observation.status, observation.stages, now(), message=observation.message
    )
    if result.changed:
        await _apply(uow, result)


async def approve_stage(
    uow: UnitOfWork,
    pipeline_id: UUID,
    run_id: UUID,
    stage: str,
    *,
    actor: str,
    approved: bool,
    comment: str | None,
) -> None:
    run = await _locked_run(uow, pipeline_id, run_id)
    await _apply(uow, plan(run, Approve(stage, actor, now(), approved, comment)))


async def answer(uow: UnitOfWork, run_id: UUID, answer: Answer) -> None:
    """An answer from another service (or the clock) about one of this service's local runs;
    about a run this service does not have, or one another system orchestrates, nothing."""
    run = await store.lock_run(uow.session, run_id)
    if run is None or run.orchestration_system != OrchestrationSystem.LOCAL:
        log.info("an answer about run %s, which the local engine does not drive; ignored", run_id)
        return
    result = plan(run, answer)
    if result.changed:
        await _apply(uow, result)


async def _apply(uow: UnitOfWork, result: Plan) -> None:
    await store.save_plan(uow.session, result)
    _record(uow, result)


def _record(uow: UnitOfWork, result: Plan) -> None:
    """The plan's events, then its commands, each command under the actor it asks for."""
    for event in result.events:
        uow.record(event, result.run.id)
    for command in result.commands:
        token = context.actor.set(getattr(command, "requested_by", None) or result.run.started_by)
        try:
            uow.record(command, result.run.id)
        finally:
            context.actor.reset(token)
