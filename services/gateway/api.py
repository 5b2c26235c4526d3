"""The gateway's own HTTP routes: health, API tokens, projects, integration configs. The
registry's and the jobs service's paths: proxy.py."""

import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, Security, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway import store
from services.gateway.auth import Authenticator, issue_token
from services.gateway.domain import Action, Principal, check_backend
from services.gateway.proxy import ServiceProxy
from services.gateway.schemas import (
    CreatedToken,
    IntegrationConfig,
    IntegrationConfigList,
    IntegrationConfigPut,
    Project,
    ProjectCreate,
    ProjectPage,
    Token,
    TokenCreate,
    TokenList,
)
from shared import context
from shared.environments import Env
from shared.errors import NotFound
from shared.events.gateway import IntegrationConfigChanged, ProjectCreated
from shared.integrations import Concern
from shared.runtime import REQUIRED, ServiceRuntime, readiness_reply

API_PREFIX = "/api/v1"
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer mp_...`")


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


async def _principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Principal:
    # HTTPBearer only documents the scheme; the Authenticator decides, as on the proxy path.
    authenticator: Authenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(request.headers.get("authorization"))
    context.actor.set(principal.subject)
    return principal


Caller = Annotated[Principal, Depends(_principal)]
Runtime = Annotated[ServiceRuntime, Depends(_runtime)]

health = APIRouter()
router = APIRouter(prefix=API_PREFIX)


@health.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz", include_in_schema=False)
async def readyz(request: Request, runtime: Runtime) -> JSONResponse:
    """Ready when the gateway's database and relay work and its backends are ready; degraded
    (still 200) while its bus is down."""
    proxies: list[ServiceProxy] = request.app.state.proxies
    checks = await runtime.readiness()
    for proxy, ready in zip(proxies, await asyncio.gather(*(p.ready() for p in proxies)),
                            strict=True):  # fmt: skip
        checks[proxy.name] = ready
    return readiness_reply(checks, (*REQUIRED, *(proxy.name for proxy in proxies)))


@router.post("/tokens", status_code=status.HTTP_201_CREATED, tags=["tokens"])
async def create_token(body: TokenCreate, caller: Caller, runtime: Runtime) -> CreatedToken:
    """Create an API token. The plaintext is in this reply only."""
    caller.require(Action.MANAGE_TOKENS)
    async with runtime.uow() as uow:
        token, row = await issue_token(uow.session, subject=body.subject, role=body.role)
    return CreatedToken(**Token.model_validate(row).model_dump(), token=token)


@router.get("/tokens", tags=["tokens"])
async def list_tokens(caller: Caller, runtime: Runtime) -> TokenList:
    caller.require(Action.MANAGE_TOKENS)
    async with runtime.sessionmaker() as session:
        rows = await store.list_tokens(session)
    return TokenList(items=[Token.model_validate(row) for row in rows], total=len(rows))


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["tokens"])
async def revoke_token(
    token_id: UUID, request: Request, caller: Caller, runtime: Runtime
) -> Response:
    caller.require(Action.MANAGE_TOKENS)
    async with runtime.uow() as uow:
        found = await store.revoke_token(uow.session, token_id)
    if not found:
        raise NotFound(f"there is no token {token_id}")
    authenticator: Authenticator = request.app.state.authenticator
    authenticator.forget(token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/projects", status_code=status.HTTP_201_CREATED, tags=["projects"])
async def create_project(body: ProjectCreate, caller: Caller, runtime: Runtime) -> Project:
    caller.require(Action.WRITE)
    async with runtime.uow() as uow:
        row = await store.add_project(
            uow.session, name=body.name, description=body.description, created_by=caller.subject
        )
        uow.record(
            ProjectCreated(
                project_id=row.id,
                name=row.name,
                description=row.description,
                created_by=row.created_by,
            ),
            aggregate_id=row.id,
        )
    return Project.model_validate(row)


@router.get("/projects", tags=["projects"])
async def list_projects(
    caller: Caller,
    runtime: Runtime,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> ProjectPage:
    caller.require(Action.READ)
    async with runtime.sessionmaker() as session:
        rows, total = await store.list_projects(session, limit=limit, offset=offset)
    return ProjectPage(
        items=[Project.model_validate(row) for row in rows], total=total, limit=limit, offset=offset
    )


@router.get("/projects/{project_id}", tags=["projects"])
async def get_project(project_id: UUID, caller: Caller, runtime: Runtime) -> Project:
    caller.require(Action.READ)
    async with runtime.sessionmaker() as session:
        row = await store.get_project(session, project_id)
    if row is None:
        raise NotFound(f"there is no project {project_id}")
    return Project.model_validate(row)


@router.put("/integrations/{env}/{concern}", tags=["integrations"])
async def put_integration_config(
    env: Env, concern: Concern, body: IntegrationConfigPut, caller: Caller, runtime: Runtime,
    response: Response,
) -> IntegrationConfig:
    """Choose the backend that serves a concern in an env (e.g. where prod's training jobs
    run). The services that use it follow the IntegrationConfigChanged this publishes."""
    caller.require(Action.MANAGE_INTEGRATIONS)
    check_backend(concern, body.backend)
    async with runtime.uow() as uow:
        row, created = await store.put_integration_config(
            uow.session, env=env.value, concern=concern.value, backend=body.backend,
            settings=body.settings, updated_by=caller.subject,
        )
        uow.record(
            IntegrationConfigChanged(
                env=row.env, concern=row.concern, backend=row.backend, settings=row.settings,
                changed_by=row.updated_by, changed_at=row.updated_at,
            ),
            aggregate_id=f"{row.env}/{row.concern}",
        )
    if created:
        response.status_code = status.HTTP_201_CREATED
        response.headers["Location"] = f"{API_PREFIX}/integrations/{row.env}/{row.concern}"
    return IntegrationConfig.model_validate(row)


@router.get("/integrations", tags=["integrations"])
async def list_integration_configs(
    caller: Caller, runtime: Runtime, env: Env | None = None
) -> IntegrationConfigList:
    caller.require(Action.MANAGE_INTEGRATIONS)
    async with runtime.sessionmaker() as session:
        rows = await store.list_integration_configs(session, env and env.value)
    return IntegrationConfigList(
        items=[IntegrationConfig.model_validate(row) for row in rows], total=len(rows)
    )


@router.get("/integrations/{env}/{concern}", tags=["integrations"])
async def get_integration_config(
    env: Env, concern: Concern, caller: Caller, runtime: Runtime
) -> IntegrationConfig:
    caller.require(Action.MANAGE_INTEGRATIONS)
    async with runtime.sessionmaker() as session:
        row = await store.get_integration_config(session, env.value, concern.value)
    if row is None:
        raise NotFound(
            f"{env.value} has no integration config for {concern.value}; its services use "
            "their own default",
            kind="integration-config-not-found",
        )
    return IntegrationConfig.model_validate(row)
