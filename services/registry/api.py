"""The registry's HTTP routes: parse, call a use case or a query, shape the reply."""

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from services.registry import service, store
from services.registry.access import Access
from services.registry.domain import ModelStage
from services.registry.errors import (
    AlreadyApproved,
    AuthorMayNotApprove,
    DuplicateModelName,
    DuplicateVersion,
    EventTooLarge,
    InvalidCursor,
    InvalidMetricGate,
    InvalidTagFilter,
    MetricGateNotMet,
    ModelNotFound,
    NotTheRequester,
    PromotionPending,
    PromotionRequestClosed,
    PromotionRequestNotFound,
    StageUnchanged,
    StagingRequired,
    VersionInProduction,
    VersionNotFound,
)
from services.registry.schemas import (
    ApprovalIn,
    ApprovalResult,
    CloseIn,
    ModelCreate,
    ModelDetail,
    ModelOut,
    ModelPage,
    ModelSummary,
    ModelUpdate,
    PolicyOut,
    PolicyRules,
    PromotionRequestOut,
    PromotionRequestPage,
    SummaryPage,
    Text,
    TransitionPage,
    TransitionRequest,
    TransitionResult,
    VersionCreate,
    VersionOut,
    VersionPage,
    VersionUpdate,
)
from shared.auth import Role
from shared.dependencies import Actor, Limit, Offset, Runtime, Who
from shared.errors import (
    Forbidden,
    InvalidInput,
    Problem,
    Unauthorized,
    UnsupportedEncoding,
    problem_responses,
)
from shared.http import rows_reply
from shared.links import link, links
from shared.projects import UnknownProject
from shared.runtime import ServiceRuntime

router = APIRouter(prefix="/api/v1/registry", tags=["registry"])


def answers(*problems: type[Problem]) -> dict:
    """The problem replies a read may give: bad input, no valid credential from the gateway, a
    role the caller lacks, and `problems`."""
    return problem_responses(InvalidInput, Unauthorized, Forbidden, *problems)


def write_answers(*problems: type[Problem]) -> dict:
    """The problem replies a write may give: those of a read, a body not in UTF-8, or an event
    too large for the bus."""
    return answers(UnsupportedEncoding, EventTooLarge, *problems)


_MODEL = "/api/v1/registry/models/{model_id}"
_VERSION = "/api/v1/registry/models/versions/{version_id}"
# What a new model's and a new version's ids lead to: its reads, changes and transitions.
MODEL_LINKS = links(
    201,
    GetModel=link(_MODEL, "get", model_id="$response.body#/id"),
    RenameModel=link(_MODEL, "patch", model_id="$response.body#/id"),
    DeleteModel=link(_MODEL, "delete", model_id="$response.body#/id"),
    CreateVersion=link(f"{_MODEL}/versions", "post", model_id="$response.body#/id"),
    ListVersions=link(f"{_MODEL}/versions", "get", model_id="$response.body#/id"),
)
VERSION_LINKS = links(
    201,
    TransitionVersion=link(f"{_VERSION}/transition", "post", version_id="$response.body#/id"),
    ListTransitions=link(f"{_VERSION}/transitions", "get", version_id="$response.body#/id"),
    UpdateVersion=link(_VERSION, "patch", version_id="$response.body#/id"),
    DeleteVersion=link(_VERSION, "delete", version_id="$response.body#/id"),
    GetVersion=link(
        f"{_MODEL}/versions/{{version}}",
        "get",
        model_id="$response.body#/model_id",
        version="$response.body#/version",
    ),
)


async def known_stages(request: Request) -> service.KnownStages:
    return request.app.state.known_stages


async def access(request: Request) -> Access:
    return request.app.state.access


Known = Annotated[service.KnownStages, Depends(known_stages)]
Allowed = Annotated[Access, Depends(access)]


def parse_tag_filters(tag: list[str]) -> list[tuple[str, str | None]]:
    """Each filter's key, and its value if it names one (`key:value`)."""
    filters: list[tuple[str, str | None]] = []
    for item in tag:
        key, sep, value = item.partition(":")
        if not key:
            raise InvalidTagFilter(f"tag filter '{item}' needs a key")
        filters.append((key, value if sep else None))
    return filters


TAG_FILTER = (
    "`key` matches a model whose tags hold it, as a label of a list or as a key of an object; "
    "`key:value` matches an object with that value for the key, or a list holding the label "
    "`key:value`. Repeat to AND."
)


@router.post(
    "/models",
    status_code=201,
    response_model=ModelOut,
    responses={**write_answers(DuplicateModelName, UnknownProject), **MODEL_LINKS},
)
async def register_model(
    body: ModelCreate, rt: Runtime, who: Actor, known: Known, caller: Who, allowed: Allowed
):
    await allowed.to_register(caller, body.project_id)
    async with rt.uow(begin=False) as uow:
        model = await service.register_model(uow, actor=who, **body.model_dump())
    known.registered(model["id"])
    location = f"{router.prefix}/models/{model['id']}"
    return rows_reply(ModelOut, dict(model), 201, {"Location": location})


@router.get("/models", response_model=ModelPage, responses=answers(InvalidTagFilter))
async def list_models(
    rt: Runtime,
    caller: Who,
    project_id: UUID | None = None,
    name: Annotated[
        Text | None, Query(description="Case-insensitive substring of the name")
    ] = None,
    tag: Annotated[list[Text], Query(description=TAG_FILTER)] = [],  # noqa: B006
    limit: Limit = 50,
    offset: Offset = 0,
):
    filters = parse_tag_filters(tag)
    async with rt.sessionmaker() as session:
        items, total = await store.find_models(
            session,
            projects=caller.scope(project_id),
            name=name,
            tags=filters,
            limit=limit,
            offset=offset,
        )
    return {"items": items, "total": total}


@router.get("/models/summary", response_model=SummaryPage, responses=answers())
async def models_summary(
    rt: Runtime,
    caller: Who,
    project_id: UUID | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
):
    async with rt.sessionmaker() as session:
        rows, total, totals = await store.summarize(
            session, projects=caller.scope(project_id), limit=limit, offset=offset
        )
    items = [
        ModelSummary(
            id=r.id,
            name=r.name,
            project_id=r.project_id,
            updated_at=r.updated_at,
            versions=r.versions,
            by_stage={s: r._mapping[s.value] for s in ModelStage},
            latest_version=r.latest_version,
            production_version=r.production_version,
        )
        for r in rows
    ]
    return SummaryPage(
        items=items,
        total=total,
        versions=totals["versions"],
        by_stage={s: totals[s.value] for s in ModelStage},
    )


@router.get(
    "/models/stages/{stage}/latest", response_model=VersionOut, responses=answers(VersionNotFound)
)
async def latest_in_stage(
    stage: ModelStage, model_id: UUID, rt: Runtime, caller: Who, allowed: Allowed
):
    await allowed.to_model(caller, model_id, Role.VIEWER)
    async with rt.connection() as conn:
        version = await store.latest_in_stage(conn, model_id, stage)
    if version is None:
        raise VersionNotFound(f"of model {model_id} in stage '{stage}'")
    return rows_reply(VersionOut, dict(version))


@router.get(
    "/models/versions/{version_id}", response_model=VersionOut, responses=answers(VersionNotFound)
)
async def get_version(version_id: UUID, rt: Runtime, caller: Who, allowed: Allowed):
    await allowed.to_version(caller, version_id, Role.VIEWER)
    async with rt.connection() as conn:
        found = await store.get_version(conn, version_id)
    if found is None:
        raise VersionNotFound(f"with id {version_id}")
    return rows_reply(VersionOut, dict(found))


@router.patch(
    "/models/versions/{version_id}",
    response_model=VersionOut,
    responses=write_answers(VersionNotFound),
)
async def update_version(
    version_id: UUID, body: VersionUpdate, rt: Runtime, caller: Who, allowed: Allowed
):
    await allowed.to_version(caller, version_id, Role.EDITOR)
    async with rt.uow() as uow:
        return await service.update_version(uow, version_id, body.model_dump(exclude_unset=True))


@router.delete(
    "/models/versions/{version_id}",
    status_code=204,
    responses=write_answers(VersionNotFound, VersionInProduction),
)
async def delete_version(version_id: UUID, rt: Runtime, caller: Who, allowed: Allowed) -> Response:
    await allowed.to_version(caller, version_id, Role.EDITOR)
    async with rt.uow() as uow:
        await service.delete_version(uow, version_id)
    return Response(status_code=204)


TRANSITION_ANSWERS = {
    **write_answers(
        VersionNotFound,
        StageUnchanged,
        StagingRequired,
        MetricGateNotMet,
        AuthorMayNotApprove,
        PromotionPending,
    ),
    202: {
        "model": PromotionRequestOut,
        "description": "The promotion policy needs approvals: the move to production is "
        "recorded as a pending request (`GET /promotion-requests`), made once approved.",
        "links": {
            name: link(
                f"/api/v1/registry/promotion-requests/{{request_id}}{tail}",
                method,
                request_id="$response.body#/id",
            )
            for name, tail, method in (
                ("GetRequest", "", "get"),
                ("ApproveRequest", "/approve", "post"),
                ("RejectRequest", "/reject", "post"),
                ("WithdrawRequest", "/withdraw", "post"),
            )
        },
    },
}


@router.post(
    "/models/versions/{version_id}/transition",
    response_model=TransitionResult,
    responses=TRANSITION_ANSWERS,
)
async def transition_stage(
    version_id: UUID,
    body: TransitionRequest,
    rt: Runtime,
    who: Actor,
    known: Known,
    caller: Who,
    allowed: Allowed,
):
    """Move a version to a stage. A move to production follows the promotion policy of its
    model, or else of its project: refused (409/403 naming the rule), made (200), or recorded as
    a request awaiting approvals (202)."""
    project = await allowed.to_version(caller, version_id, Role.EDITOR)
    approver = project is not None and caller.may(project, Role.APPROVER)
    async with rt.uow(begin=False) as uow:
        outcome = await service.request_transition(
            uow,
            version_id,
            stage=body.stage,
            comment=body.comment,
            actor=who,
            approver=approver,
            known=known,
        )
    if isinstance(outcome, service.AwaitingApprovals):
        return rows_reply(PromotionRequestOut, outcome.request, 202)
    return rows_reply(
        TransitionResult, {"version": outcome.version, "transitions": outcome.transitions}
    )


@router.get(
    "/models/versions/{version_id}/transitions",
    response_model=TransitionPage,
    responses=answers(VersionNotFound),
)
async def list_transitions(
    version_id: UUID,
    rt: Runtime,
    caller: Who,
    allowed: Allowed,
    limit: Limit = 100,
    offset: Offset = 0,
):
    await allowed.to_version(caller, version_id, Role.VIEWER)
    async with rt.connection() as conn:
        if not await store.version_exists(conn, version_id):
            raise VersionNotFound(f"with id {version_id}")
        items, total = await store.list_transitions(conn, version_id, limit=limit, offset=offset)
    return rows_reply(TransitionPage, {"items": [dict(t) for t in items], "total": total})


@router.get("/models/{model_id}", response_model=ModelDetail, responses=answers(ModelNotFound))
async def get_model(model_id: UUID, rt: Runtime, caller: Who, allowed: Allowed):
    await allowed.to_model(caller, model_id, Role.VIEWER)
    async with rt.connection() as conn:
        model = await store.get_model(conn, model_id)
        listed = (
            None
            if model is None
            else await store.list_versions(conn, model_id, stage=None, limit=100, before_seq=None)
        )
        deployments = [] if listed is None else await store.serving_of_model(conn, model_id)
    if model is None or listed is None:  # no model, or deleted between the two statements
        raise ModelNotFound(model_id)
    total, versions = listed
    serving: dict[UUID, list[dict]] = {}
    for deployment in deployments:
        serving.setdefault(deployment["version_id"], []).append(dict(deployment))
    detail = {
        **dict(model),
        "versions_total": total,
        "versions": [{**dict(v), "serving": serving.get(v["id"], [])} for v in versions],
    }
    return rows_reply(ModelDetail, detail)


@router.patch(
    "/models/{model_id}",
    response_model=ModelOut,
    responses=write_answers(ModelNotFound, DuplicateModelName),
)
async def update_model(
    model_id: UUID, body: ModelUpdate, rt: Runtime, caller: Who, allowed: Allowed
):
    await allowed.to_model(caller, model_id, Role.EDITOR)
    async with rt.uow() as uow:
        return await service.update_model(uow, model_id, body.model_dump(exclude_unset=True))


@router.delete("/models/{model_id}", status_code=204, responses=write_answers(ModelNotFound))
async def delete_model(model_id: UUID, rt: Runtime, caller: Who, allowed: Allowed) -> Response:
    await allowed.to_model(caller, model_id, Role.EDITOR)
    async with rt.uow() as uow:
        await service.delete_model(uow, model_id)
    return Response(status_code=204)


@router.post(
    "/models/{model_id}/versions",
    status_code=201,
    response_model=VersionOut,
    responses={**write_answers(ModelNotFound, DuplicateVersion), **VERSION_LINKS},
)
async def create_version(
    model_id: UUID,
    body: VersionCreate,
    rt: Runtime,
    who: Actor,
    known: Known,
    caller: Who,
    allowed: Allowed,
):
    await allowed.to_model(caller, model_id, Role.EDITOR)
    async with rt.uow(begin=False) as uow:
        version = await service.create_version(uow, model_id, actor=who, **body.model_dump())
    known.created(version)
    location = f"{router.prefix}/models/versions/{version['id']}"
    return rows_reply(VersionOut, dict(version), 201, {"Location": location})


@router.get(
    "/models/{model_id}/versions",
    response_model=VersionPage,
    responses=answers(InvalidCursor, ModelNotFound),
)
async def list_versions(
    model_id: UUID,
    rt: Runtime,
    caller: Who,
    allowed: Allowed,
    stage: ModelStage | None = None,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
):
    await allowed.to_model(caller, model_id, Role.VIEWER)
    before = None
    if cursor is not None and (before := store.decode_cursor(cursor)) is None:
        raise InvalidCursor(f"cursor '{cursor}' is not one this API gave out")
    async with rt.connection() as conn:
        listed = await store.list_versions(
            conn, model_id, stage=stage, limit=limit, before_seq=before
        )
    if listed is None:
        raise ModelNotFound(model_id)
    total, items = listed
    next_cursor = store.encode_cursor(items[-1]["seq"]) if len(items) == limit else None
    page = {"items": [dict(v) for v in items], "total": total, "next_cursor": next_cursor}
    return rows_reply(VersionPage, page)


@router.get(
    "/models/{model_id}/versions/{version}",
    response_model=VersionOut,
    responses=answers(VersionNotFound),
)
async def get_version_by_label(
    model_id: UUID, version: Text, rt: Runtime, caller: Who, allowed: Allowed
):
    await allowed.to_model(caller, model_id, Role.VIEWER)
    async with rt.connection() as conn:
        found = await store.get_version_by_label(conn, model_id, version)
    if found is None:
        raise VersionNotFound(f"'{version}' of model {model_id}")
    return rows_reply(VersionOut, dict(found))


# ---- The promotion policy: a project's, a model's override, and the requests awaiting approvals.


@router.get(
    "/projects/{project_id}/promotion-policy",
    response_model=PolicyOut,
    responses=answers(UnknownProject),
)
async def get_project_policy(project_id: UUID, rt: Runtime, caller: Who, allowed: Allowed):
    """The project's promotion policy; `source` is `none`, every rule off, until one is set."""
    caller.require(project_id, Role.VIEWER)
    await allowed.projects.require(project_id, caller)
    async with rt.connection() as conn:
        row = await store.project_policy(conn, project_id)
    return rows_reply(PolicyOut, service.policy_view(row, project_id=project_id, model_id=None))


@router.put(
    "/projects/{project_id}/promotion-policy",
    response_model=PolicyOut,
    responses=write_answers(InvalidMetricGate, UnknownProject),
)
async def set_project_policy(
    project_id: UUID, body: PolicyRules, rt: Runtime, who: Actor, caller: Who, allowed: Allowed
):
    """Set the project's promotion policy, whole: a rule left out is off. Needs a project
    admin."""
    caller.require(project_id, Role.ADMIN)
    await allowed.projects.require(project_id, caller)
    async with rt.uow() as uow:
        policy = await service.set_promotion_policy(
            uow, project_id=project_id, model_id=None, rules=body.model_dump(), actor=who
        )
    return rows_reply(PolicyOut, policy)


@router.delete(
    "/projects/{project_id}/promotion-policy", status_code=204, responses=write_answers()
)
async def clear_project_policy(project_id: UUID, rt: Runtime, who: Actor, caller: Who) -> Response:
    """Turn every rule of the project's policy off (models' overrides stay). Needs a project
    admin."""
    caller.require(project_id, Role.ADMIN)
    async with rt.uow() as uow:
        await service.clear_promotion_policy(uow, project_id=project_id, model_id=None, actor=who)
    return Response(status_code=204)


@router.get(
    "/models/{model_id}/promotion-policy",
    response_model=PolicyOut,
    responses=answers(ModelNotFound),
)
async def get_model_policy(model_id: UUID, rt: Runtime, caller: Who, allowed: Allowed):
    """The policy the model's moves to production follow: its override, else its project's."""
    project = await allowed.to_model(caller, model_id, Role.VIEWER)
    if project is None:
        raise ModelNotFound(model_id)
    async with rt.connection() as conn:
        row = await store.policy_of_model(conn, project, model_id)
    return rows_reply(PolicyOut, service.policy_view(row, project_id=project, model_id=model_id))


@router.put(
    "/models/{model_id}/promotion-policy",
    response_model=PolicyOut,
    responses=write_answers(ModelNotFound, InvalidMetricGate),
)
async def set_model_policy(
    model_id: UUID, body: PolicyRules, rt: Runtime, who: Actor, caller: Who, allowed: Allowed
):
    """Override the project's policy for this model, whole: the project's rules no longer
    apply to it. Needs an admin of the model's project."""
    project = await allowed.to_model(caller, model_id, Role.ADMIN)
    if project is None:
        raise ModelNotFound(model_id)
    async with rt.uow() as uow:
        policy = await service.set_promotion_policy(
            uow, project_id=project, model_id=model_id, rules=body.model_dump(), actor=who
        )
    return rows_reply(PolicyOut, policy)


@router.delete(
    "/models/{model_id}/promotion-policy", status_code=204, responses=write_answers(ModelNotFound)
)
async def clear_model_policy(
    model_id: UUID, rt: Runtime, who: Actor, caller: Who, allowed: Allowed
) -> Response:
    """Remove the model's override: its project's policy applies again."""
    project = await allowed.to_model(caller, model_id, Role.ADMIN)
    if project is None:
        raise ModelNotFound(model_id)
    async with rt.uow() as uow:
        await service.clear_promotion_policy(uow, project_id=project, model_id=model_id, actor=who)
    return Response(status_code=204)


RequestStatus = Literal["pending", "approved", "rejected", "withdrawn", "superseded"]


@router.get("/promotion-requests", response_model=PromotionRequestPage, responses=answers())
async def list_promotion_requests(
    rt: Runtime,
    caller: Who,
    project_id: UUID | None = None,
    model_id: UUID | None = None,
    version_id: UUID | None = None,
    status: Annotated[
        RequestStatus | None, Query(description="`pending` unless given")
    ] = "pending",
    limit: Limit = 50,
    offset: Offset = 0,
):
    """Moves to production awaiting approvals (or, by `status`, those closed), newest first,
    in the projects the caller may see."""
    async with rt.connection() as conn:
        items, total = await store.list_promotion_requests(
            conn,
            projects=caller.scope(project_id),
            model_id=model_id,
            version_id=version_id,
            status=status,
            limit=limit,
            offset=offset,
        )
        approvals = await store.approvals_of(conn, [r["id"] for r in items])
    page = [service.request_view(r, approvals[r["id"]]) for r in items]
    return rows_reply(PromotionRequestPage, {"items": page, "total": total})


@router.get(
    "/promotion-requests/{request_id}",
    response_model=PromotionRequestOut,
    responses=answers(PromotionRequestNotFound),
)
async def get_promotion_request(request_id: UUID, rt: Runtime, caller: Who, allowed: Allowed):
    await allowed.to_request(caller, request_id, Role.VIEWER)
    async with rt.connection() as conn:
        request = await store.get_promotion_request(conn, request_id)
        if request is None:
            raise PromotionRequestNotFound(request_id)
        approvals = await store.approvals_of(conn, [request_id])
    return rows_reply(PromotionRequestOut, service.request_view(request, approvals[request_id]))


@router.post(
    "/promotion-requests/{request_id}/approve",
    response_model=ApprovalResult,
    responses=write_answers(
        PromotionRequestNotFound,
        PromotionRequestClosed,
        AlreadyApproved,
        AuthorMayNotApprove,
        StagingRequired,
        MetricGateNotMet,
        StageUnchanged,
    ),
)
async def approve_promotion(
    request_id: UUID,
    rt: Runtime,
    who: Actor,
    known: Known,
    caller: Who,
    allowed: Allowed,
    body: ApprovalIn | None = None,
):
    """Approve a pending move to production, as an approver of its project. The approval that
    brings the count to what the request needs makes the move, under the rules as they are
    then."""
    await allowed.to_request(caller, request_id, Role.APPROVER)
    async with rt.uow() as uow:
        request, moved = await service.approve_promotion(
            uow, request_id, actor=who, comment=body.comment if body else None, known=known
        )
    result = {
        "request": request,
        "version": moved and moved.version,
        "transitions": moved.transitions if moved else [],
    }
    return rows_reply(ApprovalResult, result)


@router.post(
    "/promotion-requests/{request_id}/reject",
    response_model=PromotionRequestOut,
    responses=write_answers(PromotionRequestNotFound, PromotionRequestClosed),
)
async def reject_promotion(
    request_id: UUID,
    rt: Runtime,
    who: Actor,
    caller: Who,
    allowed: Allowed,
    body: CloseIn | None = None,
):
    """Refuse a pending move to production, as an approver of its project."""
    await allowed.to_request(caller, request_id, Role.APPROVER)
    return await _close_promotion(rt, request_id, "rejected", who, body)


@router.post(
    "/promotion-requests/{request_id}/withdraw",
    response_model=PromotionRequestOut,
    responses=write_answers(PromotionRequestNotFound, PromotionRequestClosed, NotTheRequester),
)
async def withdraw_promotion(
    request_id: UUID,
    rt: Runtime,
    who: Actor,
    caller: Who,
    allowed: Allowed,
    body: CloseIn | None = None,
):
    """Take back a pending move to production, as who asked for it."""
    await allowed.to_request(caller, request_id, Role.EDITOR)
    return await _close_promotion(rt, request_id, "withdrawn", who, body)


async def _close_promotion(
    rt: ServiceRuntime, request_id: UUID, status: str, who: str, body: CloseIn | None
) -> Response:
    async with rt.uow() as uow:
        request = await service.close_promotion(
            uow, request_id, status=status, actor=who, reason=body.reason if body else None
        )
    return rows_reply(PromotionRequestOut, request)
