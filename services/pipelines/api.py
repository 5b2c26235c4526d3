"""The pipelines service's HTTP routes: parse, call a use case or a query, shape the reply."""

import logging
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from services.pipelines import service, store
from services.pipelines.argo_runs import ArgoRuns
from services.pipelines.domain import (
    IllegalRunTransition,
    InvalidDefinition,
    InvalidRunParameters,
    OrchestrationSystem,
    RunStatus,
)
from services.pipelines.engine import (
    RunFinished,
    RunNotFailed,
    RunRetriesExhausted,
    StageNotAwaitingApproval,
    StageNotFound,
)
from services.pipelines.errors import (
    DefinitionVersionNotFound,
    PipelineNameTaken,
    PipelineNotFound,
    RetryUnsupported,
    RunNotFound,
)
from services.pipelines.models import WorkflowPipeline
from services.pipelines.schemas import (
    ApprovalRequest,
    DefinitionCreate,
    DefinitionOut,
    PipelineCreate,
    PipelineDetail,
    PipelineOut,
    PipelinePage,
    RunCreate,
    RunDetail,
    RunOut,
    RunPage,
    StageOut,
)
from services.pipelines.settings import PipelinesSettings
from shared.auth import Caller, Role
from shared.dependencies import Actor, Limit, Offset, Runtime, Who
from shared.errors import Forbidden, InvalidInput, Problem, Unauthorized, problem_responses
from shared.links import link, links
from shared.projects import ProjectDirectory
from shared.runtime import ServiceRuntime

router = APIRouter(prefix="/api/v1", tags=["pipelines"])
log = logging.getLogger(__name__)


async def argo_runs(request: Request) -> ArgoRuns:
    return request.app.state.argo_runs


async def projects(request: Request) -> ProjectDirectory:
    return request.app.state.projects


async def settings(request: Request) -> PipelinesSettings:
    return request.app.state.settings


Argo = Annotated[ArgoRuns, Depends(argo_runs)]
Projects = Annotated[ProjectDirectory, Depends(projects)]
Settings = Annotated[PipelinesSettings, Depends(settings)]


async def _pipeline(
    rt: ServiceRuntime, pipeline_id: UUID, caller: Caller, role: Role
) -> WorkflowPipeline:
    """The pipeline, if the caller holds `role` in its project (viewers read, editors run and
    change, approvers approve); 404 before 403."""
    async with rt.sessionmaker() as session:
        pipeline = await store.get_pipeline(session, pipeline_id)
    if pipeline is None:
        raise PipelineNotFound(f"no pipeline has id {pipeline_id}")
    caller.require(pipeline.project_id, role)
    return pipeline


def answers(*problems: type[Problem]) -> dict:
    """The problem replies a route may give: bad input, no valid credential from the gateway, a
    role the caller lacks, and `problems`."""
    return problem_responses(InvalidInput, Unauthorized, Forbidden, *problems)


_PIPELINE = "/api/v1/pipelines/{pipeline_id}"
_RUN = f"{_PIPELINE}/runs/{{run_id}}"
PIPELINE_LINKS = links(
    201,
    **{
        name: link(f"{_PIPELINE}{tail}", method, pipeline_id="$response.body#/id")
        for name, tail, method in (
            ("GetPipeline", "", "get"),
            ("AddDefinition", "/definitions", "post"),
            ("ListDefinitions", "/definitions", "get"),
            ("StartRun", "/runs", "post"),
            ("ListRuns", "/runs", "get"),
        )
    },
)
RUN_LINKS = links(
    201,
    **{
        name: link(
            f"{_RUN}{tail}",
            method,
            pipeline_id="$response.body#/pipeline_id",
            run_id="$response.body#/id",
        )
        for name, tail, method in (
            ("GetRun", "", "get"),
            ("CancelRun", "/cancel", "post"),
            ("RetryRun", "/retry", "post"),
        )
    },
)


async def _orchestration(rt: ServiceRuntime, run_id: UUID) -> OrchestrationSystem | None:
    async with rt.sessionmaker() as session:
        row = await store.get_run(session, run_id)
    return None if row is None else OrchestrationSystem(row.orchestration_system)


async def _pipeline_detail(rt: ServiceRuntime, pipeline_id: UUID) -> PipelineDetail:
    async with rt.sessionmaker() as session:
        pipeline = await store.get_pipeline(session, pipeline_id)
        if pipeline is None:
            raise PipelineNotFound(f"no pipeline has id {pipeline_id}")
        definition = await store.get_definition(session, pipeline_id, pipeline.latest_version)
    assert definition is not None, "a pipeline's latest version is stored with it"
    return PipelineDetail(
        **PipelineOut.model_validate(pipeline).model_dump(), definition=definition.definition
    )


async def _run_detail(rt: ServiceRuntime, pipeline_id: UUID, run_id: UUID) -> RunDetail:
    async with rt.sessionmaker() as session:
        await store.read_one_snapshot(session)
        run = await store.get_run(session, run_id)
        if run is None or run.pipeline_id != pipeline_id:
            raise RunNotFound(f"pipeline {pipeline_id} has no run {run_id}")
        stages = await store.run_stages(session, run_id)
    return RunDetail(
        **RunOut.model_validate(run).model_dump(),
        pipeline_definition=run.pipeline_definition,
        stages=[StageOut.model_validate(s) for s in stages],
    )


@router.post(
    "/pipelines",
    status_code=201,
    response_model=PipelineDetail,
    responses={**answers(InvalidDefinition, PipelineNameTaken), **PIPELINE_LINKS},
)
async def create_pipeline(
    body: PipelineCreate,
    rt: Runtime,
    actor: Actor,
    response: Response,
    caller: Who,
    known: Projects,
):
    """A pipeline and its first definition, checked whole: every problem in one 422."""
    caller.require(body.project_id, Role.EDITOR)
    await known.require(body.project_id, caller)
    async with rt.uow() as uow:
        pipeline = await service.create_pipeline(uow, body, actor=actor)
    response.headers["Location"] = f"{router.prefix}/pipelines/{pipeline.id}"
    return await _pipeline_detail(rt, pipeline.id)


@router.get("/pipelines", response_model=PipelinePage, responses=answers())
async def list_pipelines(
    rt: Runtime,
    caller: Who,
    project_id: UUID | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
):
    """The pipelines of the projects the caller may see (of `project_id`, if given)."""
    async with rt.sessionmaker() as session:
        items, total = await store.list_pipelines(session, caller.scope(project_id), limit, offset)
    return {"items": items, "total": total}


@router.get(
    "/pipelines/{pipeline_id}", response_model=PipelineDetail, responses=answers(PipelineNotFound)
)
async def get_pipeline(pipeline_id: UUID, rt: Runtime, caller: Who):
    await _pipeline(rt, pipeline_id, caller, Role.VIEWER)
    return await _pipeline_detail(rt, pipeline_id)


@router.post(
    "/pipelines/{pipeline_id}/definitions",
    status_code=201,
    response_model=DefinitionOut,
    responses=answers(PipelineNotFound, InvalidDefinition),
)
async def add_definition(
    pipeline_id: UUID, body: DefinitionCreate, rt: Runtime, actor: Actor, caller: Who
):
    """A new version of the definition; runs started from now on run it unless they name one."""
    await _pipeline(rt, pipeline_id, caller, Role.EDITOR)
    async with rt.uow() as uow:
        version = await service.add_definition(uow, pipeline_id, body.definition, actor=actor)
    async with rt.sessionmaker() as session:
        return await store.get_definition(session, pipeline_id, version)


@router.get(
    "/pipelines/{pipeline_id}/definitions",
    response_model=list[DefinitionOut],
    responses=answers(PipelineNotFound),
)
async def list_definitions(pipeline_id: UUID, rt: Runtime, caller: Who):
    await _pipeline(rt, pipeline_id, caller, Role.VIEWER)
    async with rt.sessionmaker() as session:
        return await store.list_definitions(session, pipeline_id)


@router.post(
    "/pipelines/{pipeline_id}/runs",
    status_code=201,
    response_model=RunDetail,
    responses={
        **answers(PipelineNotFound, DefinitionVersionNotFound, InvalidRunParameters),
        **RUN_LINKS,
    },
)
async def start_run(
    pipeline_id: UUID,
    body: RunCreate,
    rt: Runtime,
    settings: Settings,
    actor: Actor,
    response: Response,
    argo: Argo,
    caller: Who,
):
    """Start a run on its env's orchestrator: the local engine asks for its first stages in the
    commit that stores it; Argo gets the workflow once it is stored."""
    pipeline = await _pipeline(rt, pipeline_id, caller, Role.EDITOR)
    async with rt.sessionmaker() as session:
        orchestration = await service.orchestration_of(
            session, body.env.value, settings.orchestration(body.env)
        )
    namespace = (
        argo.config.namespace
        if orchestration == OrchestrationSystem.ARGO_WORKFLOWS
        else service.LOCAL_NAMESPACE
    )
    async with rt.uow() as uow:
        run_id = await service.start_run(
            uow,
            pipeline_id,
            body,
            actor=actor,
            orchestration=orchestration,
            workflow_namespace=namespace,
            may_approve=caller.may(pipeline.project_id, Role.APPROVER),
        )
    if orchestration == OrchestrationSystem.ARGO_WORKFLOWS:
        try:
            await argo.submit(run_id)
        except Exception:
            log.exception("submitting run %s's workflow failed; the watcher tries again", run_id)
    response.headers["Location"] = f"{router.prefix}/pipelines/{pipeline_id}/runs/{run_id}"
    return await _run_detail(rt, pipeline_id, run_id)


@router.get(
    "/pipelines/{pipeline_id}/runs", response_model=RunPage, responses=answers(PipelineNotFound)
)
async def list_runs(
    pipeline_id: UUID,
    rt: Runtime,
    caller: Who,
    status: RunStatus | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
):
    await _pipeline(rt, pipeline_id, caller, Role.VIEWER)
    async with rt.sessionmaker() as session:
        items, total = await store.list_runs(
            session, pipeline_id, status and status.value, limit, offset
        )
    return {"items": items, "total": total}


@router.get(
    "/pipelines/{pipeline_id}/runs/{run_id}",
    response_model=RunDetail,
    responses=answers(RunNotFound),
)
async def get_run(pipeline_id: UUID, run_id: UUID, rt: Runtime, caller: Who):
    """The run with each stage's state, attempt, job, outputs and timings."""
    await _pipeline(rt, pipeline_id, caller, Role.VIEWER)
    return await _run_detail(rt, pipeline_id, run_id)


@router.post(
    "/pipelines/{pipeline_id}/runs/{run_id}/cancel",
    response_model=RunDetail,
    responses=answers(RunNotFound, RunFinished, IllegalRunTransition),
)
async def cancel_run(
    pipeline_id: UUID, run_id: UUID, rt: Runtime, actor: Actor, argo: Argo, caller: Who
):
    """Cancel the run: its stages at work stop, and their jobs (or pods) are killed."""
    await _pipeline(rt, pipeline_id, caller, Role.EDITOR)
    if await _orchestration(rt, run_id) == OrchestrationSystem.ARGO_WORKFLOWS:
        await argo.cancel(pipeline_id, run_id, actor)
    else:
        async with rt.uow() as uow:
            await service.cancel_run(uow, pipeline_id, run_id, actor=actor)
    return await _run_detail(rt, pipeline_id, run_id)


@router.post(
    "/pipelines/{pipeline_id}/runs/{run_id}/retry",
    response_model=RunDetail,
    responses=answers(
        RunNotFound, RunNotFailed, RunRetriesExhausted, RetryUnsupported, IllegalRunTransition
    ),
)
async def retry_run(pipeline_id: UUID, run_id: UUID, rt: Runtime, actor: Actor, caller: Who):
    """Retry a failed run from its failed stages on; finished stages are not run again."""
    pipeline = await _pipeline(rt, pipeline_id, caller, Role.EDITOR)
    async with rt.uow() as uow:
        await service.retry_run(
            uow,
            pipeline_id,
            run_id,
            actor=actor,
            may_approve=caller.may(pipeline.project_id, Role.APPROVER),
        )
    return await _run_detail(rt, pipeline_id, run_id)


@router.post(
    "/pipelines/{pipeline_id}/runs/{run_id}/stages/{stage}/approve",
    response_model=RunDetail,
    responses=answers(RunNotFound, StageNotFound, StageNotAwaitingApproval, RunFinished),
)
async def approve_stage(
    pipeline_id: UUID,
    run_id: UUID,
    stage: str,
    body: ApprovalRequest,
    rt: Runtime,
    actor: Actor,
    argo: Argo,
    caller: Who,
):
    """Approve (or reject) an approve stage that waits: approvers of the project only."""
    await _pipeline(rt, pipeline_id, caller, Role.APPROVER)
    if await _orchestration(rt, run_id) == OrchestrationSystem.ARGO_WORKFLOWS:
        await argo.approve(
            pipeline_id, run_id, stage, actor=actor, approved=body.approved, comment=body.comment
        )
    else:
        async with rt.uow() as uow:
            await service.approve_stage(
                uow,
                pipeline_id,
                run_id,
                stage,
                actor=actor,
                approved=body.approved,
                comment=body.comment,
            )
    return await _run_detail(rt, pipeline_id, run_id)
