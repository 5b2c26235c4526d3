"""The serving service's HTTP routes: parse, call a use case or a query, shape the reply."""

from collections.abc import Mapping
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from services.serving import predictions, service, store
from services.serving.errors import (
    DeploymentSpecInvalid,
    DuplicateEndpoint,
    EndpointInvalid,
    EndpointRetired,
    NothingToServe,
    PredictionRefused,
    ServingBackendUnavailable,
    endpoint_not_found,
)
from services.serving.integrations.backend import ServingBackend
from services.serving.schemas import DeploymentOut, EndpointCreate, EndpointOut, EndpointPage
from services.serving.settings import ServingSettings
from shared.auth import Role
from shared.dependencies import Actor, Runtime, Who
from shared.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Problem,
    Unauthorized,
    problem_responses,
)
from shared.links import link, links
from shared.projects import ProjectDirectory

router = APIRouter(prefix="/api/v1/serving", tags=["serving"])


async def backends(request: Request) -> Mapping[str, ServingBackend]:
    return request.app.state.backends


async def settings(request: Request) -> ServingSettings:
    return request.app.state.settings


async def routes(request: Request) -> predictions.Routes:
    return request.app.state.routes


async def projects(request: Request) -> ProjectDirectory:
    return request.app.state.projects


Backends = Annotated[Mapping[str, ServingBackend], Depends(backends)]
Settings = Annotated[ServingSettings, Depends(settings)]
Projects = Annotated[ProjectDirectory, Depends(projects)]
Routes = Annotated[predictions.Routes, Depends(routes)]


def answers(*problems: type[Problem]) -> dict:
    """The problem replies a route may give: bad input, no valid credential from the gateway, a
    role the caller lacks, and `problems` (a missing endpoint or version is a 404)."""
    return problem_responses(InvalidInput, Unauthorized, Forbidden, *problems)


_ENDPOINT = "/api/v1/serving/endpoints/{endpoint_id}"
ENDPOINT_LINKS = links(
    201,
    GetEndpoint=link(_ENDPOINT, "get", endpoint_id="$response.body#/id"),
    RetireEndpoint=link(_ENDPOINT, "delete", endpoint_id="$response.body#/id"),
    Predict=link(f"{_ENDPOINT}/predict", "post", endpoint_id="$response.body#/id"),
)


def _shape(endpoint, deployments) -> EndpointOut:
    out = EndpointOut.model_validate(endpoint)
    out.deployments = [DeploymentOut.model_validate(d) for d in deployments]
    return out


@router.post(
    "/endpoints",
    status_code=201,
    response_model=EndpointOut,
    responses={
        **answers(EndpointInvalid, DeploymentSpecInvalid, DuplicateEndpoint, NotFound),
        **ENDPOINT_LINKS,
    },
)
async def create_endpoint(
    body: EndpointCreate,
    rt: Runtime,
    config: Settings,
    who: Actor,
    response: Response,
    caller: Who,
    known: Projects,
):
    """An endpoint, and its first deployment when a version is there to serve."""
    caller.require(body.project_id, Role.EDITOR)
    await known.require(body.project_id, caller)
    async with rt.uow() as uow:
        namespace = body.namespace or await service.default_namespace(
            uow, body.env.value, config.serving_namespace
        )
        endpoint = await service.create_endpoint(
            uow,
            name=body.name,
            project_id=body.project_id,
            model_id=body.model_id,
            model_version_id=body.model_version_id,
            follow_stage=body.follow_stage,
            framework=body.serving_framework,
            namespace=namespace,
            env=body.env.value,
            deployment=body.deployment.model_dump(),
            actor=who,
            frameworks=config.serving_frameworks,
        )
        deployments = await store.deployments_of(uow.session, endpoint.id)
        out = _shape(endpoint, deployments)
    response.headers["Location"] = f"{router.prefix}/endpoints/{endpoint.id}"
    return out


@router.get("/endpoints", response_model=EndpointPage, responses=answers())
async def list_endpoints(rt: Runtime, caller: Who, project_id: UUID | None = None):
    """The endpoints of the projects the caller may see."""
    async with rt.sessionmaker() as session:
        endpoints = await store.list_endpoints(session, caller.scope(project_id))
        items = [_shape(e, await store.deployments_of(session, e.id)) for e in endpoints]
    return {"items": items, "total": len(items)}


@router.get("/endpoints/{endpoint_id}", response_model=EndpointOut, responses=answers(NotFound))
async def get_endpoint(endpoint_id: UUID, rt: Runtime, caller: Who):
    async with rt.sessionmaker() as session:
        endpoint = await store.get_endpoint(session, endpoint_id)
        if endpoint is None:
            raise endpoint_not_found(endpoint_id)
        caller.require(endpoint.project_id, Role.VIEWER)
        return _shape(endpoint, await store.deployments_of(session, endpoint.id))


@router.delete(
    "/endpoints/{endpoint_id}", response_model=EndpointOut, responses=answers(NotFound, Conflict)
)
async def retire_endpoint(endpoint_id: UUID, rt: Runtime, caller: Who, routes: Routes):
    """Undeploy: the endpoint stops answering and its deployments are taken down."""
    async with rt.uow() as uow:
        endpoint = await service.retire_endpoint(uow, endpoint_id, caller)
        out = _shape(endpoint, await store.deployments_of(uow.session, endpoint.id))
    routes.forget(endpoint_id)
    return out


@router.post(
    "/endpoints/{endpoint_id}/predict",
    responses=answers(
        NotFound, NothingToServe, EndpointRetired, PredictionRefused, ServingBackendUnavailable
    ),
)
async def predict(
    endpoint_id: UUID, request: Request, routes: Routes, serving: Backends, caller: Who
) -> Response:
    """The MLflow scoring protocol (`dataframe_split`, `dataframe_records`, `inputs`,
    `instances`), answered by whatever serves the endpoint now."""
    answer = await predictions.predict(routes, serving, endpoint_id, await request.body(), caller)
    return Response(answer.body, status_code=answer.status_code, media_type=answer.content_type)
