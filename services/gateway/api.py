"""The gateway's own HTTP routes: health, API tokens, projects and their members, integration
configs. Parse, call service.py, shape the reply. The services' paths: proxy.py."""

import asyncio
from typing import Annotated, Any
from urllib.parse import quote
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security, status
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway import service, store
from services.gateway.auth import Authenticated, Authenticator
from services.gateway.errors import (
    DuplicateProjectName,
    IntegrationConfigNotFound,
    LineageNotFound,
    MemberNotFound,
    ProjectNotFound,
    TokenNotFound,
    UnknownIntegrationBackend,
)
from services.gateway.lineage import Kind, Services, lineage
from services.gateway.proxy import ServiceProxy
from services.gateway.schemas import (
    CreatedToken,
    IntegrationConfig,
    IntegrationConfigList,
    IntegrationConfigPut,
    Lineage,
    Member,
    MemberList,
    MemberPut,
    Project,
    ProjectCreate,
    ProjectPage,
    Token,
    TokenCreate,
    TokenList,
)
from shared import context
from shared.auth import CREDENTIAL_HEADER, Caller, CredentialVerifier
from shared.environments import Env
from shared.errors import (
    Forbidden,
    InvalidInput,
    Problem,
    Unauthorized,
    UnsupportedEncoding,
    problem_responses,
)
from shared.integrations import Concern
from shared.links import link, links
from shared.projects import UnknownProject
from shared.runtime import REQUIRED, ServiceRuntime, readiness_reply
from shared.validation import Text

API_PREFIX = "/api/v1"
INTERNAL_PREFIX = "/internal"
# The POSTs whose replies hold a secret shown once: their Idempotency-Key never keeps the reply.
SECRET_REPLIES = frozenset({f"{API_PREFIX}/tokens"})
_bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer mp_...`")


def _runtime(request: Request) -> ServiceRuntime:
    return request.app.state.runtime


async def _authenticated(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Authenticated:
    # HTTPBearer only documents the scheme; the Authenticator decides, as on the proxy path.
    authenticator: Authenticator = request.app.state.authenticator
    found = await authenticator.authenticate(request.headers.get("authorization"))
    context.actor.set(found.caller.subject)
    return found


async def _caller(found: Annotated[Authenticated, Depends(_authenticated)]) -> Caller:
    return found.caller


async def _service(request: Request) -> Caller:
    """A service calling the gateway with a credential signed by the internal keys."""
    verifier: CredentialVerifier = request.app.state.verifier
    return verifier.verify(request.headers.get(CREDENTIAL_HEADER))


def answers(*problems: type[Problem]) -> dict:
    """The problem replies a route may give: bad input, no valid token, a role the caller
    lacks, a body not in UTF-8, and `problems`."""
    return problem_responses(InvalidInput, Unauthorized, Forbidden, UnsupportedEncoding, *problems)


_PROJECT = f"{API_PREFIX}/projects/{{project_id}}"
_NEW_PROJECT = "$response.body#/id"
# What a new project's id leads to: its reads and members, and the first things made in it.
PROJECT_LINKS = links(
    201,
    GetProject=link(_PROJECT, "get", project_id=_NEW_PROJECT),
    ListMembers=link(f"{_PROJECT}/members", "get", project_id=_NEW_PROJECT),
    PutMember=link(f"{_PROJECT}/members/{{subject}}", "put", project_id=_NEW_PROJECT),
    RegisterModel=link(f"{API_PREFIX}/registry/models", "post", body={"project_id": _NEW_PROJECT}),
    CreateDataset=link(f"{API_PREFIX}/datasets", "post", body={"project_id": _NEW_PROJECT}),
    SubmitJob=link(f"{API_PREFIX}/jobs", "post", body={"project_id": _NEW_PROJECT}),
    SetPromotionPolicy=link(
        f"{API_PREFIX}/registry/projects/{{project_id}}/promotion-policy",
        "put",
        project_id=_NEW_PROJECT,
    ),
)
TOKEN_LINKS = links(
    201,
    RevokeToken=link(f"{API_PREFIX}/tokens/{{token_id}}", "delete", token_id="$response.body#/id"),
)
# A PUT that creates answers 201 (with Location), one that replaces answers 200.
MEMBER_ADDED: dict[int | str, dict[str, Any]] = {
    201: {"model": Member, "description": "The subject was not a member before"}
}
CONFIG_CREATED: dict[int | str, dict[str, Any]] = {
    201: {"model": IntegrationConfig, "description": "The concern had no config"}
}

Who = Annotated[Caller, Depends(_caller)]
Runtime = Annotated[ServiceRuntime, Depends(_runtime)]
Subject = Annotated[Text, Path(min_length=1, max_length=200)]

health = APIRouter()
router = APIRouter(prefix=API_PREFIX)
internal = APIRouter(prefix=INTERNAL_PREFIX, include_in_schema=False)


@health.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz", include_in_schema=False)
async def readyz(request: Request, runtime: Runtime) -> JSONResponse:
    """Ready when the gateway's database and relay work and its backends are ready; degraded
    (still 200) while its bus is down."""
    proxies: list[ServiceProxy] = request.app.state.proxies
    checks = await runtime.readiness()
    for proxy, ready in zip(
        proxies, await asyncio.gather(*(p.ready() for p in proxies)), strict=True
    ):
        checks[proxy.name] = ready
    return readiness_reply(checks, (*REQUIRED, *(proxy.name for proxy in proxies)))


@router.post(
    "/tokens",
    status_code=status.HTTP_201_CREATED,
    tags=["tokens"],
    responses={**answers(UnknownProject), **TOKEN_LINKS},
)
async def create_token(body: TokenCreate, caller: Who, runtime: Runtime) -> CreatedToken:
    """Create an API token. The plaintext is in this reply only."""
    async with runtime.uow() as uow:
        token, row = await service.create_token(
            uow, caller, subject=body.subject, role=body.role, projects=body.projects
        )
    return CreatedToken(**Token.model_validate(row).model_dump(), token=token)


@router.get("/tokens", tags=["tokens"], responses=answers())
async def list_tokens(caller: Who, runtime: Runtime) -> TokenList:
    async with runtime.sessionmaker() as session:
        rows = await service.list_tokens(session, caller)
    return TokenList(items=[Token.model_validate(row) for row in rows], total=len(rows))


@router.delete(
    "/tokens/{token_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["tokens"],
    responses=answers(TokenNotFound),
)
async def revoke_token(token_id: UUID, request: Request, caller: Who, runtime: Runtime) -> Response:
    async with runtime.uow() as uow:
        await service.revoke_token(uow, caller, token_id)
    authenticator: Authenticator = request.app.state.authenticator
    authenticator.forget(token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/projects",
    status_code=status.HTTP_201_CREATED,
    tags=["projects"],
    responses={**answers(DuplicateProjectName), **PROJECT_LINKS},
)
async def create_project(body: ProjectCreate, caller: Who, runtime: Runtime) -> Project:
    """Create a project. Platform admins only."""
    async with runtime.uow() as uow:
        row = await service.create_project(
            uow, caller, name=body.name, description=body.description
        )
    return Project.model_validate(row)


@router.get("/projects", tags=["projects"], responses=answers())
async def list_projects(
    caller: Who,
    runtime: Runtime,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> ProjectPage:
    """The projects the caller may see."""
    async with runtime.sessionmaker() as session:
        rows, total = await service.list_projects(session, caller, limit=limit, offset=offset)
    return ProjectPage(
        items=[Project.model_validate(row) for row in rows], total=total, limit=limit, offset=offset
    )


@router.get("/projects/{project_id}", tags=["projects"], responses=answers(ProjectNotFound))
async def get_project(project_id: UUID, caller: Who, runtime: Runtime) -> Project:
    async with runtime.sessionmaker() as session:
        row = await service.get_project(session, caller, project_id)
    return Project.model_validate(row)


@router.get("/projects/{project_id}/members", tags=["projects"], responses=answers(ProjectNotFound))
async def list_members(project_id: UUID, caller: Who, runtime: Runtime) -> MemberList:
    """The project's members and their roles. The project's admins only."""
    async with runtime.sessionmaker() as session:
        rows = await service.list_members(session, caller, project_id)
    return MemberList(items=[Member.model_validate(row) for row in rows], total=len(rows))


@router.put(
    "/projects/{project_id}/members/{subject}",
    tags=["projects"],
    responses={**answers(ProjectNotFound), **MEMBER_ADDED},
)
async def put_member(
    project_id: UUID,
    subject: Subject,
    body: MemberPut,
    caller: Who,
    runtime: Runtime,
    request: Request,
    response: Response,
) -> Member:
    """Give a subject a role in the project (it replaces the one they had). Project admins only."""
    async with runtime.uow() as uow:
        row, created = await service.put_member(uow, caller, project_id, subject, body.role)
    request.app.state.authenticator.forget_subject(subject)
    if created:
        response.status_code = status.HTTP_201_CREATED
        # A subject may hold any character, a CR or LF included: a header may not.
        location = f"{API_PREFIX}/projects/{project_id}/members/{quote(subject, safe='')}"
        response.headers["Location"] = location
    return Member.model_validate(row)


@router.delete(
    "/projects/{project_id}/members/{subject}",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["projects"],
    responses=answers(ProjectNotFound, MemberNotFound),
)
async def remove_member(
    project_id: UUID, subject: Subject, caller: Who, runtime: Runtime, request: Request
) -> Response:
    async with runtime.uow() as uow:
        await service.remove_member(uow, caller, project_id, subject)
    request.app.state.authenticator.forget_subject(subject)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/integrations/{env}/{concern}",
    tags=["integrations"],
    responses={**answers(UnknownIntegrationBackend), **CONFIG_CREATED},
)
async def put_integration_config(
    env: Env,
    concern: Concern,
    body: IntegrationConfigPut,
    caller: Who,
    runtime: Runtime,
    response: Response,
) -> IntegrationConfig:
    """Choose the backend that serves a concern in an env (e.g. where prod's training jobs
    run). The services that use it follow the IntegrationConfigChanged this publishes."""
    async with runtime.uow() as uow:
        row, created = await service.put_integration_config(
            uow, caller, env, concern, body.backend, body.settings
        )
    if created:
        response.status_code = status.HTTP_201_CREATED
        response.headers["Location"] = f"{API_PREFIX}/integrations/{row.env}/{row.concern}"
    return IntegrationConfig.model_validate(row)


@router.get("/integrations", tags=["integrations"], responses=answers())
async def list_integration_configs(
    caller: Who, runtime: Runtime, env: Env | None = None
) -> IntegrationConfigList:
    async with runtime.sessionmaker() as session:
        rows = await service.list_integration_configs(session, caller, env)
    return IntegrationConfigList(
        items=[IntegrationConfig.model_validate(row) for row in rows], total=len(rows)
    )


@router.get(
    "/integrations/{env}/{concern}",
    tags=["integrations"],
    responses=answers(IntegrationConfigNotFound),
)
async def get_integration_config(
    env: Env, concern: Concern, caller: Who, runtime: Runtime
) -> IntegrationConfig:
    async with runtime.sessionmaker() as session:
        row = await service.get_integration_config(session, caller, env, concern)
    return IntegrationConfig.model_validate(row)


@router.get(
    "/lineage/{kind}/{node_id}",
    tags=["lineage"],
    response_model=Lineage,
    responses=answers(LineageNotFound),
)
async def get_lineage(
    kind: Kind,
    node_id: Annotated[str, Path(min_length=1, max_length=255)],
    request: Request,
    found: Annotated[Authenticated, Depends(_authenticated)],
):
    """Where a dataset version, job, MLflow run (by its run id), model version or deployment
    came from and what came of it: dataset version -> job -> run -> model version ->
    deployment, from each service's API as the caller may read it."""
    api = Services(request.app.state.proxies, found.caller, found.credential)
    return (await lineage(api, kind, node_id)).as_json()


@internal.get("/projects/{project_id}")
async def project_for_service(
    project_id: UUID, _: Annotated[Caller, Depends(_service)], runtime: Runtime
) -> Project:
    """A project as a service asks for it when it has not yet seen its ProjectCreated."""
    async with runtime.sessionmaker() as session:
        row = await store.get_project(session, project_id)
    if row is None:
        raise service.project_not_found(project_id)
    return Project.model_validate(row)
