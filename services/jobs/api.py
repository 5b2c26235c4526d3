"""The jobs service's HTTP routes: parse, call a use case or a query, shape the reply."""

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from services.jobs import service, store
from services.jobs.domain import JobStatus, job_warnings
from services.jobs.errors import (
    DuplicateGpuType,
    EventTooLarge,
    GpuTypeNotFound,
    InvalidGpuTypeOption,
    JobAlreadyFinished,
    JobNotFound,
    JobRejected,
)
from services.jobs.schemas import (
    ExperimentRunOut,
    GpuTypeCreate,
    GpuTypeOut,
    GpuTypePage,
    GpuTypeUpdate,
    JobCreate,
    JobOut,
    JobPage,
)
from services.jobs.supervisor import JobSupervisor
from shared.auth import Caller, Role
from shared.dependencies import Actor, Limit, Offset, Runtime, Who
from shared.environments import Env
from shared.errors import (
    Forbidden,
    InvalidInput,
    Problem,
    Unauthorized,
    UnsupportedEncoding,
    problem_responses,
)
from shared.links import link, links
from shared.projects import ProjectDirectory, UnknownProject
from shared.runtime import ServiceRuntime
from shared.validation import Text

router = APIRouter(prefix="/api/v1", tags=["jobs"])

_GPU_TYPE = "/api/v1/gpu-types/{env}/{gpu_type_id}"
_JOB = "/api/v1/jobs/{job_id}"
GPU_TYPE_LINKS = links(
    201,
    UpdateGpuType=link(
        _GPU_TYPE, "patch", env="$response.body#/env", gpu_type_id="$response.body#/id"
    ),
    DeleteGpuType=link(
        _GPU_TYPE, "delete", env="$response.body#/env", gpu_type_id="$response.body#/id"
    ),
)
JOB_LINKS = links(
    201,
    GetJob=link(_JOB, "get", job_id="$response.body#/id"),
    GetJobLogs=link(f"{_JOB}/logs", "get", job_id="$response.body#/id"),
    CancelJob=link(f"{_JOB}/cancel", "post", job_id="$response.body#/id"),
)


async def supervisor(request: Request) -> JobSupervisor:
    return request.app.state.supervisor


async def projects(request: Request) -> ProjectDirectory:
    return request.app.state.projects


Supervisor = Annotated[JobSupervisor, Depends(supervisor)]
Projects = Annotated[ProjectDirectory, Depends(projects)]


def answers(*problems: type[Problem]) -> dict:
    """The problem replies a read may give: bad input, no valid credential from the gateway, a
    role the caller lacks, and `problems`."""
    return problem_responses(InvalidInput, Unauthorized, Forbidden, *problems)


def write_answers(*problems: type[Problem]) -> dict:
    """The problem replies a write may give: those of a read, a body not in UTF-8, or an event
    too large for the bus."""
    return answers(UnsupportedEncoding, EventTooLarge, *problems)


@router.post(
    "/gpu-types",
    status_code=201,
    response_model=GpuTypeOut,
    tags=["gpu-types"],
    responses={**write_answers(InvalidGpuTypeOption, DuplicateGpuType), **GPU_TYPE_LINKS},
)
async def create_gpu_type(body: GpuTypeCreate, rt: Runtime, caller: Who, response: Response):
    caller.require_platform_admin()
    async with rt.uow() as uow:
        option = await service.create_gpu_type(uow, **body.model_dump())
    # An id may hold any character, a CR or LF included: a header may not.
    response.headers["Location"] = (
        f"{router.prefix}/gpu-types/{option.env}/{quote(option.id, safe='')}"
    )
    return option


@router.get("/gpu-types", response_model=GpuTypePage, tags=["gpu-types"], responses=answers())
async def list_gpu_types(
    rt: Runtime,
    env: Env | None = None,
    include_disabled: Annotated[bool, Query(description="Admins' view: disabled ones too")] = False,
):
    """The options of an env for the UI's drop-down: enabled ones, by priority, then label."""
    async with rt.sessionmaker() as session:
        items = await store.list_gpu_types(session, env and env.value, include_disabled)
    return {"items": items, "total": len(items)}


@router.patch(
    "/gpu-types/{env}/{gpu_type_id}",
    response_model=GpuTypeOut,
    tags=["gpu-types"],
    responses=write_answers(InvalidGpuTypeOption, GpuTypeNotFound),
)
async def update_gpu_type(
    env: Env, gpu_type_id: Text, body: GpuTypeUpdate, rt: Runtime, caller: Who
):
    caller.require_platform_admin()
    async with rt.uow() as uow:
        changes = body.model_dump(exclude_unset=True)
        return await service.update_gpu_type(uow, env, gpu_type_id, changes)


@router.delete(
    "/gpu-types/{env}/{gpu_type_id}",
    status_code=204,
    tags=["gpu-types"],
    responses=write_answers(GpuTypeNotFound),
)
async def delete_gpu_type(env: Env, gpu_type_id: Text, rt: Runtime, caller: Who) -> Response:
    caller.require_platform_admin()
    async with rt.uow() as uow:
        await service.delete_gpu_type(uow, env, gpu_type_id)
    return Response(status_code=204)


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobOut,
    responses={**write_answers(JobRejected, UnknownProject), **JOB_LINKS},
)
async def submit_job(
    body: JobCreate,
    rt: Runtime,
    jobs: Supervisor,
    who: Actor,
    response: Response,
    caller: Who,
    known: Projects,
):
    caller.require(body.project_id, Role.EDITOR)
    await known.require(body.project_id, caller)
    async with rt.uow() as uow:
        job = await service.submit_job(uow, body, actor=who)
    if job.status == JobStatus.REJECTED:
        # Committed first: the rejected job and its JobRejected event are kept.
        fields = [
            {"loc": ["body", v["field"]], "msg": v["message"], "type": v["rule"]}
            for v in job.violations
            if v.get("field")
        ]
        extensions: dict[str, Any] = {"job_id": str(job.id), "violations": job.violations}
        if fields:
            extensions["errors"] = fields
        raise JobRejected("; ".join(v["message"] for v in job.violations), **extensions)
    await jobs.start(job.id)
    response.headers["Location"] = f"{router.prefix}/jobs/{job.id}"
    return await _job_out(rt, job.id)


@router.get("/jobs", response_model=JobPage, responses=answers())
async def list_jobs(
    rt: Runtime,
    caller: Who,
    project_id: UUID | None = None,
    status: JobStatus | None = None,
    pipeline_run_id: UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
    tracking_run_id: Annotated[
        Text | None,
        Query(max_length=255, description="The job whose experiment run has this MLflow run id"),
    ] = None,
):
    async with rt.sessionmaker() as session:
        items, total = await store.find_jobs(
            session,
            projects=caller.scope(project_id),
            status=status,
            pipeline_run_id=pipeline_run_id,
            tracking_run_id=tracking_run_id,
            limit=limit,
            offset=offset,
        )
        runs = await store.runs_of_jobs(session, [j.id for j in items])
    return {"items": [_shape(j, runs.get(j.id)) for j in items], "total": total}


@router.get("/jobs/{job_id}", response_model=JobOut, responses=answers(JobNotFound))
async def get_job(job_id: UUID, rt: Runtime, caller: Who):
    return await _job_out(rt, job_id, caller, Role.VIEWER)


@router.get("/jobs/{job_id}/logs", response_class=StreamingResponse, responses=answers(JobNotFound))
async def job_logs(job_id: UUID, rt: Runtime, jobs: Supervisor, caller: Who):
    """The job's output as text, followed while it runs."""
    async with rt.sessionmaker() as session:
        job = await store.get_job(session, job_id)
    if job is None:
        raise JobNotFound(job_id)
    caller.require(job.project_id, Role.VIEWER)

    async def lines() -> AsyncIterator[bytes]:
        if job.handle is None:
            return
        async for line in jobs.logs(job):
            yield (line + "\n").encode()

    return StreamingResponse(lines(), media_type="text/plain; charset=utf-8")


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses=write_answers(JobNotFound, JobAlreadyFinished),
)
async def cancel_job(job_id: UUID, rt: Runtime, jobs: Supervisor, caller: Who):
    await _job_out(rt, job_id, caller, Role.EDITOR)  # 404 and 403 before anything else
    await jobs.cancel(job_id)
    return await _job_out(rt, job_id)


async def _job_out(
    rt: ServiceRuntime, job_id: UUID, caller: Caller | None = None, role: Role = Role.VIEWER
) -> JobOut:
    """The job as the API shows it; with a `caller`, only if they hold `role` in its project."""
    async with rt.sessionmaker() as session:
        job = await store.get_job(session, job_id)
        if job is None:
            raise JobNotFound(job_id)
        if caller is not None:
            caller.require(job.project_id, role)
        run = await store.run_of_job(session, job_id)
    return _shape(job, run)


def _shape(job, run) -> JobOut:
    out = JobOut.model_validate(job)
    out.experiment_run = ExperimentRunOut.model_validate(run) if run is not None else None
    out.warnings = job_warnings(job.executor, job.python_env)
    return out
