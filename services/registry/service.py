"""The registry's use cases: each runs inside one unit of work, applies the domain's rules, and
records the events its changes cause, so state, audit trail and events commit together."""

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy.exc import IntegrityError

from services.registry import store
from services.registry.domain import (
    Candidate,
    MetricGate,
    ModelStage,
    PromotionPolicy,
    StageChange,
    VersionState,
    check_deletable,
    plan_transition,
    requires_approval,
)
from services.registry.errors import (
    AlreadyApproved,
    DuplicateModelName,
    DuplicateVersion,
    ModelNotFound,
    NotTheRequester,
    OutsideTheRunsProject,
    PromotionAwaitsApprovals,
    PromotionPending,
    PromotionRequestClosed,
    PromotionRequestNotFound,
    StageUnchanged,
    VersionNotFound,
)
from services.registry.models import ModelVersion, RegisteredModel
from shared.auth import Role
from shared.db import UnitOfWork, apply_changes
from shared.errors import Forbidden, InvalidInput, Problem
from shared.events.pipelines import (
    ModelVersionPromotionRequested,
    ModelVersionRegistrationRequested,
    StageCommand,
)
from shared.events.registry import (
    ModelDeleted,
    ModelRegistered,
    ModelUpdated,
    ModelVersionApprovalClosed,
    ModelVersionApprovalRequested,
    ModelVersionApproved,
    ModelVersionCreated,
    ModelVersionDeleted,
    ModelVersionTransitioned,
    ModelVersionUpdated,
    PromotionPolicyChanged,
    RegistryStageCommandDone,
    RegistryStageCommandRefused,
    tag_fields,
)
from shared.events.serving import DeploymentEvent
from shared.events.stage_attempts import StageAttemptAnswer

# A version as read (a row) or as `KnownStages` remembers it.
Version = store.RecordLike


async def register_model(
    uow: UnitOfWork,
    *,
    name: str,
    project_id: UUID,
    description: str | None,
    tags: dict[str, str] | list[str],
    actor: str,
) -> store.Record:
    """Runs in a unit of work that has not begun: the model and its event are one statement."""
    model_id = uuid4()
    model = await store.insert_model(
        uow,
        {
            "id": model_id,
            "name": name,
            "project_id": project_id,
            "description": description,
            "tags": tags,
            "created_by": actor,
        },
        ModelRegistered(
            model_id=model_id,
            name=name,
            project_id=project_id,
            description=description,
            created_by=actor,
            **tag_fields(tags),
        ),
    )
    if model is None:
        raise DuplicateModelName(f"project {project_id} already has a model named '{name}'")
    return model


async def update_model(uow: UnitOfWork, model_id: UUID, changes: dict[str, Any]) -> RegisteredModel:
    model = await store.lock_model(uow.session, model_id)
    if model is None:
        raise ModelNotFound(model_id)
    new_name = changes.get("name")
    if new_name not in (None, model.name) and await store.model_name_taken(
        uow.session, model.project_id, new_name
    ):
        raise DuplicateModelName(
            f"project {model.project_id} already has a model named '{new_name}'"
        )
    if changes:
        project_id = model.project_id  # the session cannot read it after a failed flush
        try:
            await apply_changes(uow.session, model, changes)
        except IntegrityError:
            # A rename that raced another to the same name past the check above: the one
            # unique key an update of a model can break is its name in its project.
            raise DuplicateModelName(
                f"project {project_id} already has a model named '{new_name}'"
            ) from None
        uow.record(
            ModelUpdated(
                model_id=model.id, name=model.name, project_id=model.project_id, changes=changes
            ),
            model.id,
        )
    return model


async def delete_model(uow: UnitOfWork, model_id: UUID) -> None:
    model = await store.lock_model(uow.session, model_id)
    if model is None:
        raise ModelNotFound(model_id)
    deleted_versions = await store.delete_model(uow.conn, model_id)
    uow.record(
        ModelDeleted(
            model_id=model.id,
            name=model.name,
            project_id=model.project_id,
            deleted_versions=deleted_versions,
        ),
        model.id,
    )


async def create_version(
    uow: UnitOfWork,
    model_id: UUID,
    *,
    version: str | None,
    actor: str,
    answers: StageAttemptAnswer | None = None,
    **fields: Any,
) -> store.Record:
    """A new version in stage `none`; labelled 1, 2, 3, ... when no label is given. In a unit
    of work that has not begun, a numbered version and its event are one statement. `answers`
    is the pipeline stage attempt that asked for it, named in its event."""
    values: dict[str, Any] = {
        "description": None,
        "run_id": None,
        "artifact_version_id": None,
        "artifact_uri": None,
        "metrics": {},
        "tags": [],
        "metadata": {},
    }
    values.update(fields)
    values.update(
        id=uuid4(),
        model_id=model_id,
        version=version,
        stage=ModelStage.NONE.value,
        created_by=actor,
    )
    if version is None and not uow.begun:
        # The model's name and the number are the statement's to fill in.
        event = _version_created(values, model_name="", version="", answers=answers)
        created = await store.insert_numbered_version_with_event(uow, values, event)
        if created is not None:
            return created
    if not uow.begun:
        await uow.begin()
    created = await store.insert_numbered_version(uow.conn, values)
    if created is None:
        created = await _create_version_past_a_taken_label(uow, values)
    uow.record(
        _version_created(
            values, model_name=created["model_name"], version=created["version"], answers=answers
        ),
        created["id"],
    )
    return created


def _version_created(
    values: dict[str, Any],
    *,
    model_name: str,
    version: str,
    answers: StageAttemptAnswer | None = None,
) -> ModelVersionCreated:
    return ModelVersionCreated(
        model_id=values["model_id"],
        model_name=model_name,
        version_id=values["id"],
        version=version,
        stage=values["stage"],
        run_id=values["run_id"],
        artifact_uri=values["artifact_uri"],
        metrics=values["metrics"],
        created_by=values["created_by"],
        **tag_fields(values["tags"]),
        **(answers.stage_attempt() if answers else {}),
    )


async def _create_version_past_a_taken_label(
    uow: UnitOfWork, values: dict[str, Any]
) -> store.Record:
    """The first try found no model, or its label taken: a label given by the caller is a
    conflict; a number someone took as their label is skipped. Each try bumps the counter, so
    it ends at the number used."""
    model = await store.lock_model(uow.session, values["model_id"])
    if model is None:
        raise ModelNotFound(values["model_id"])
    if values["version"] is not None:
        raise DuplicateVersion(f"model '{model.name}' already has a version '{values['version']}'")
    number = model.version_counter
    while True:
        number += 1
        created = await store.insert_numbered_version(uow.conn, {**values, "version": str(number)})
        if created is not None:
            return created


async def update_version(
    uow: UnitOfWork, version_id: UUID, changes: dict[str, Any]
) -> ModelVersion:
    found = await store.lock_version_and_model(uow.session, version_id)
    if found is None:
        raise VersionNotFound(f"with id {version_id}")
    version, model = found
    if changes:
        columns = {("meta" if k == "metadata" else k): v for k, v in changes.items()}
        await apply_changes(uow.session, version, columns)
        uow.record(
            ModelVersionUpdated(
                model_id=model.id,
                model_name=model.name,
                version_id=version.id,
                version=version.version,
                changes=changes,
            ),
            version.id,
        )
    return version


async def delete_version(uow: UnitOfWork, version_id: UUID) -> None:
    found = await store.lock_version_and_model(uow.session, version_id)
    if found is None:
        raise VersionNotFound(f"with id {version_id}")
    version, model = found
    check_deletable(VersionState(version.id, version.version, ModelStage(version.stage)))
    await store.delete_version(uow.conn, version_id)
    uow.record(
        ModelVersionDeleted(
            model_id=model.id, model_name=model.name, version_id=version.id, version=version.version
        ),
        version.id,
    )


async def transition_stage(
    uow: UnitOfWork,
    version_id: UUID,
    *,
    stage: ModelStage,
    comment: str | None,
    actor: str,
    known: "KnownStages",
    answers: StageAttemptAnswer | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Move a version to a stage; returns the version as it is now and the transitions made.
    `answers` is the pipeline stage attempt that asked for it, named in the version's event.

    The plan is made from what `known` remembers, else from the version as read, else under a
    lock: one statement applies it only if the stage and production version it assumed hold."""
    async for version, remembered in _versions_to_plan_from(uow, version_id, known):
        try:
            changes = plan_transition(_state(version), stage, comment, _serving(version))
        except StageUnchanged:
            if remembered:
                continue  # perhaps it was, but is no longer: the version as read decides
            raise

        now = datetime.now(UTC)
        model_id = version["model_id"]
        recorded = [
            {
                "id": uuid4(),
                "version_id": c.version_id,
                "model_id": model_id,
                "from_stage": c.from_stage.value,
                "to_stage": c.to_stage.value,
                "comment": c.comment,
                "transitioned_by": actor,
                "transitioned_at": now,
            }
            for c in changes
        ]
        events = [
            (
                ModelVersionTransitioned(
                    model_id=model_id,
                    model_name="",
                    version_id=c.version_id,
                    version=c.version,
                    from_stage=c.from_stage,
                    to_stage=c.to_stage,
                    comment=c.comment,
                    actor=actor,
                    **(answers.stage_attempt() if answers and c.version_id == version_id else {}),
                ),
                c.version_id,
            )  # the model's name is the statement's to fill in
            for c in changes
        ]
        moved = await store.transition(
            uow,
            version,
            changes,
            [r["id"] for r in recorded],
            actor=actor,
            at=now,
            approved_by=actor if requires_approval(stage) else None,
            events=events,
        )
        if moved is not None:
            known.moved(model_id, _serving(version), changes)
            return dict(moved), recorded
    raise RuntimeError(f"the transition of version {version_id} went stale under its lock")


async def _versions_to_plan_from(
    uow: UnitOfWork, version_id: UUID, known: "KnownStages"
) -> AsyncIterator[tuple[Version, bool]]:
    """The version to plan a transition from, and whether it is only remembered: remembered,
    then as read, then as read under the lock in a transaction. Inside a transaction already,
    read under the lock at once."""
    if not uow.begun:
        remembered = known.version(version_id)
        if remembered is not None:
            yield remembered, True
    for lock in (uow.begun, True):
        if lock and not uow.begun:
            await uow.begin()
        version = await store.version_for_transition(uow.conn, version_id, lock=lock)
        if version is None:
            raise VersionNotFound(f"with id {version_id}")
        known.read(version)
        yield version, False


class KnownStages:
    """What this process last saw of versions' stages and models' production versions, so a
    transition is planned without reading them first.

    Never trusted: the transition's statement checks what the plan assumed, so a stale entry
    costs an empty statement and a read. Bounded: when full, the oldest entry goes."""

    def __init__(self, limit: int = 50_000) -> None:
        self._limit = limit
        # version id -> (model id, label, stage); model id -> its production version or None
        self._versions: dict[UUID, tuple[UUID, str, str]] = {}
        self._production: dict[UUID, VersionState | None] = {}

    def version(self, version_id: UUID) -> dict[str, Any] | None:
        """The version as `store.version_for_transition` reads it, if both it and its model's
        production version are known."""
        known = self._versions.get(version_id)
        if known is None or known[0] not in self._production:
            return None
        model_id, label, stage = known
        serving = self._production[model_id]
        return {
            "id": version_id,
            "model_id": model_id,
            "version": label,
            "stage": stage,
            "production_version_id": serving and serving.id,
            "production_version": serving and serving.version,
        }

    def created(self, version: Version) -> None:
        self._put(
            self._versions,
            version["id"],
            (version["model_id"], version["version"], version["stage"]),
        )

    def registered(self, model_id: UUID) -> None:
        self._put(self._production, model_id, None)

    def read(self, version: Version) -> None:
        self.created(version)
        self._put(self._production, version["model_id"], _serving(version))

    def moved(
        self, model_id: UUID, serving: VersionState | None, changes: Sequence[StageChange]
    ) -> None:
        """`changes` were applied to versions of the model that `serving` served."""
        for change in changes:
            entry = (model_id, change.version, change.to_stage.value)
            self._put(self._versions, change.version_id, entry)
            if change.to_stage == ModelStage.PRODUCTION:
                serving = VersionState(change.version_id, change.version, change.to_stage)
            elif serving is not None and change.version_id == serving.id:
                serving = None
        self._put(self._production, model_id, serving)

    def _put(self, entries: dict, key: UUID, value: Any) -> None:
        entries.pop(key, None)  # so that it goes last
        entries[key] = value
        if len(entries) > self._limit:
            del entries[next(iter(entries))]


def _state(version: Version) -> VersionState:
    return VersionState(version["id"], version["version"], ModelStage(version["stage"]))


def _serving(version: Version) -> VersionState | None:
    """The version serving production in the model of `version`, as read with it."""
    if version["production_version_id"] is None:
        return None
    return VersionState(
        version["production_version_id"], version["production_version"], ModelStage.PRODUCTION
    )


# Commands of pipeline stages


async def register_for_stage(
    uow: UnitOfWork, command: ModelVersionRegistrationRequested, *, actor: str
) -> store.Record:
    """The version a pipeline's register stage asks for, its event naming the stage attempt."""
    project = await store.project_of_model(uow.conn, command.model_id)
    if project is None:
        raise ModelNotFound(command.model_id)
    _check_runs_project(command, project, f"model {command.model_id}")
    created = await create_version(
        uow,
        command.model_id,
        version=command.version,
        actor=actor,
        answers=_answers(command),
        run_id=command.run_id,
        artifact_uri=command.artifact_uri,
        metrics=command.metrics,
        description=command.description or f"registered by pipeline run {command.pipeline_run_id}",
        tags={
            **command.tags,
            "pipeline_run_id": str(command.pipeline_run_id),
            "pipeline_stage": command.stage,
        },
    )
    _done(uow, command, created)
    return created


async def promote_for_stage(
    uow: UnitOfWork, command: ModelVersionPromotionRequested, *, actor: str
) -> None:
    """A pipeline's promote stage moves a version through the transition every caller uses."""
    project = await store.project_of_version(uow.conn, command.version_id)
    if project is None:
        raise VersionNotFound(f"with id {command.version_id}")
    _check_runs_project(command, project, f"version {command.version_id}")
    if command.to_stage not in set(ModelStage):
        raise InvalidInput(f"'{command.to_stage}' is not a stage: one of {', '.join(ModelStage)}")
    # The pipelines service vouches for an approval: an approve stage's approver, or a run
    # started by an approver (it checks either before a move to production is asked for).
    done = await request_transition(
        uow,
        command.version_id,
        stage=ModelStage(command.to_stage),
        comment=command.comment,
        actor=actor,
        approver=command.approved_by is not None,
        known=KnownStages(limit=1),
        answers=_answers(command),
    )
    if isinstance(done, AwaitingApprovals):
        raise PromotionAwaitsApprovals(
            f"the promotion policy asks {done.request['approvals_required']} approval(s) of "
            f"this move: request {done.request['id']} waits for them in the registry"
        )
    _done(uow, command, done.version)


def _done(uow: UnitOfWork, command: StageCommand, version: store.RecordLike) -> None:
    """The stage's attempt is told the version it asked for, as it is now (in the change's
    commit: `record` refuses a unit of work that has not begun)."""
    uow.record(
        RegistryStageCommandDone(
            pipeline_run_id=command.pipeline_run_id,
            pipeline_stage=command.stage,
            pipeline_attempt=command.attempt,
            command=command.subject,
            model_id=version["model_id"],
            version_id=version["id"],
            version=version["version"],
            stage=version["stage"],
        ),
        command.pipeline_run_id,
    )


def refuse_stage_command(uow: UnitOfWork, command: StageCommand, refusal: Problem) -> None:
    """The stage's attempt is told why the registry would not do what it asked."""
    uow.record(
        RegistryStageCommandRefused(
            pipeline_run_id=command.pipeline_run_id,
            pipeline_stage=command.stage,
            pipeline_attempt=command.attempt,
            command=command.subject,
            problem=refusal.kind,
            reason=refusal.detail,
        ),
        command.pipeline_run_id,
    )


def _answers(command: StageCommand) -> StageAttemptAnswer:
    return StageAttemptAnswer(
        pipeline_run_id=command.pipeline_run_id,
        pipeline_stage=command.stage,
        pipeline_attempt=command.attempt,
    )


def _check_runs_project(command: StageCommand, project: UUID, what: str) -> None:
    if command.project_id is not None and command.project_id != project:
        raise OutsideTheRunsProject(
            f"{what} is in project {project}, not in the run's project {command.project_id}"
        )


async def deployment_changed(uow: UnitOfWork, change: DeploymentEvent, at: datetime) -> None:
    """Where the version serves: the deployment's state as of the event's time `at`."""
    await store.record_deployment(
        uow.session,
        {
            "deployment_id": change.deployment_id,
            "model_id": change.model_id,
            "version_id": change.model_version_id,
            "endpoint_id": change.endpoint_id,
            "endpoint_name": change.endpoint_name,
            "env": change.env,
            "serving_framework": change.serving_framework,
            "state": change.state,
            "changed_at": at,
        },
    )


# ---- The promotion policy: moves to production under a project's (or a model's) rules.


@dataclass(frozen=True)
class Moved:
    """A transition made: the version as it is now and the transitions recorded."""

    version: dict[str, Any]
    transitions: list[dict[str, Any]]


@dataclass(frozen=True)
class AwaitingApprovals:
    """A move to production recorded as a request that waits for approvals."""

    request: dict[str, Any]


async def request_transition(
    uow: UnitOfWork,
    version_id: UUID,
    *,
    stage: ModelStage,
    comment: str | None,
    actor: str,
    approver: bool,
    known: "KnownStages | None" = None,
    answers: StageAttemptAnswer | None = None,
) -> Moved | AwaitingApprovals:
    """Move a version to a stage under its model's promotion policy, or record the move to
    production as a request awaiting approvals; the HTTP route's and consumers' use case alike.

    `approver`: whether `actor` holds the approver role in the version's project; `answers`:
    the pipeline stage attempt that asked, named in the move's event."""
    known = known if known is not None else KnownStages()

    async def move() -> Moved:
        return Moved(
            *await transition_stage(
                uow,
                version_id,
                stage=stage,
                comment=comment,
                actor=actor,
                known=known,
                answers=answers,
            )
        )

    if stage in SUPERSEDING:
        if not uow.begun:
            await uow.begin()  # the move and the request it ends, together or not at all
        moved = await move()
        await _supersede_request(uow, moved.version, stage, actor)
        return moved
    if stage != ModelStage.PRODUCTION:
        return await move()
    found = await store.policy_for_version(uow.conn, version_id)
    if found is None:
        raise VersionNotFound(f"with id {version_id}")
    policy = policy_of(found if found["policy_id"] is not None else None)
    if not policy.active:  # as without a policy: the move is the approver's approval
        _require_approver(approver, actor, found["project_id"])
        return await move()
    if not uow.begun:
        await uow.begin()
    version = await _locked_version(uow, version_id)
    candidate = _candidate(version)
    if candidate.stage == ModelStage.PRODUCTION:
        raise StageUnchanged(f"version {candidate.version} is already in stage 'production'")
    policy.check_move(candidate)
    if policy.approvals_required == 0:
        _require_approver(approver, actor, found["project_id"])
        policy.check_approver(actor, candidate)
        return await move()
    request = await store.insert_promotion_request(
        uow.conn,
        {
            "id": uuid4(),
            "version_id": version_id,
            "model_id": version["model_id"],
            "project_id": found["project_id"],
            "to_stage": stage.value,
            "comment": comment,
            "approvals_required": policy.approvals_required,
            "status": "pending",
            "requested_by": actor,
            "requested_at": datetime.now(UTC),
            "closed_by": None,
            "closed_at": None,
            "reason": None,
        },
    )
    if request is None:
        raise PromotionPending(
            f"version {candidate.version} has a move to production awaiting approvals already"
        )
    uow.record(
        ModelVersionApprovalRequested(
            request_id=request["id"],
            model_id=version["model_id"],
            model_name=version["model_name"],
            version_id=version_id,
            version=candidate.version,
            to_stage=stage.value,
            approvals_required=request["approvals_required"],
            comment=comment,
            requested_by=actor,
        ),
        version_id,
    )
    return AwaitingApprovals(request_view(request, []))


# A version moved to one of these while a move of it to production waits ends that request.
SUPERSEDING = (ModelStage.ARCHIVED, ModelStage.NONE)


async def _supersede_request(
    uow: UnitOfWork, version: Mapping[str, Any], stage: ModelStage, actor: str
) -> None:
    closed = await store.supersede_pending_request(
        uow.conn,
        version["id"],
        closed_by=actor,
        closed_at=datetime.now(UTC),
        reason=f"version {version['version']} was moved to {stage.value}",
    )
    if closed is not None:
        _record_closed(uow, closed, version)


def _record_closed(uow: UnitOfWork, closed: store.RecordLike, version: store.RecordLike) -> None:
    """The event of a request closed without a move, from its row as the close left it."""
    uow.record(
        ModelVersionApprovalClosed(
            request_id=closed["id"],
            model_id=closed["model_id"],
            model_name=version["model_name"],
            version_id=closed["version_id"],
            version=version["version"],
            status=closed["status"],
            closed_by=closed["closed_by"],
            reason=closed["reason"],
        ),
        closed["version_id"],
    )


async def approve_promotion(
    uow: UnitOfWork,
    request_id: UUID,
    *,
    actor: str,
    comment: str | None,
    known: "KnownStages | None" = None,
) -> tuple[dict[str, Any], Moved | None]:
    """Record `actor`'s approval (an approver's: the caller checked) of a pending request, and
    make the move if it was the last one needed; the request, and the move if made."""
    request, version = await _pending_request(uow, request_id)
    candidate = _candidate(version)
    policy = policy_of(
        await store.policy_of_model(uow.conn, request["project_id"], request["model_id"])
    )
    policy.check_approver(actor, candidate)
    now = datetime.now(UTC)
    event = ModelVersionApproved(
        request_id=request_id,
        model_id=request["model_id"],
        model_name=version["model_name"],
        version_id=request["version_id"],
        version=candidate.version,
        approver=actor,
        approvals=0,
        approvals_required=request["approvals_required"],
        comment=comment,
    )
    approved = await store.insert_approval(
        uow,
        {"request_id": request_id, "approver": actor, "comment": comment, "approved_at": now},
        event,
        request["version_id"],
    )
    if approved is None:
        raise AlreadyApproved(f"{actor!r} has approved request {request_id} already")
    approvals = (await store.approvals_of(uow.conn, [request_id]))[request_id]
    if len(approvals) < request["approvals_required"]:
        return request_view(request, approvals), None
    policy.check_move(candidate)
    moved = Moved(
        *await transition_stage(
            uow,
            request["version_id"],
            stage=ModelStage(request["to_stage"]),
            comment=request["comment"],
            actor=actor,
            known=known or KnownStages(),
        )
    )
    closed = await store.close_promotion_request(
        uow.conn, request_id, status="approved", closed_by=actor, closed_at=now, reason=None
    )
    return request_view(closed, approvals), moved


async def close_promotion(
    uow: UnitOfWork, request_id: UUID, *, status: str, actor: str, reason: str | None
) -> dict[str, Any]:
    """End a pending request without a move: `rejected` by an approver (the caller checked) or
    `withdrawn` by who made it."""
    request, version = await _pending_request(uow, request_id)
    if status == "withdrawn" and actor != request["requested_by"]:
        raise NotTheRequester(
            f"{request['requested_by']!r} made request {request_id}; only they may withdraw it"
        )
    closed = await store.close_promotion_request(
        uow.conn,
        request_id,
        status=status,
        closed_by=actor,
        closed_at=datetime.now(UTC),
        reason=reason,
    )
    _record_closed(uow, closed, version)
    approvals = (await store.approvals_of(uow.conn, [request_id]))[request_id]
    return request_view(closed, approvals)


async def set_promotion_policy(
    uow: UnitOfWork,
    *,
    project_id: UUID,
    model_id: UUID | None,
    rules: Mapping[str, Any],
    actor: str,
) -> dict[str, Any]:
    """Set a project's policy, or with `model_id` the model's override, whole (a rule left out
    is off); a metric gate is parsed first, so a bad one is a 422 with nothing stored."""
    gate = rules.get("metric_gate")
    policy = PromotionPolicy(
        require_staging=rules.get("require_staging", False),
        approvals_required=rules.get("approvals_required", 0),
        forbid_author_approval=rules.get("forbid_author_approval", False),
        metric_gate=None if gate is None else MetricGate.parse(gate),
    )
    row = await store.put_policy(
        uow.conn,
        {
            "id": uuid4(),
            "project_id": project_id,
            "model_id": model_id,
            **policy_columns(policy),
            "updated_by": actor,
            "updated_at": datetime.now(UTC),
        },
    )
    uow.record(
        PromotionPolicyChanged(
            project_id=project_id, model_id=model_id, policy=policy_columns(policy), actor=actor
        ),
        model_id or project_id,
    )
    return policy_view(row, project_id=project_id, model_id=model_id)


async def clear_promotion_policy(
    uow: UnitOfWork, *, project_id: UUID, model_id: UUID | None, actor: str
) -> None:
    """Remove a project's policy, or a model's override (its project's then applies); having
    none to remove is no error."""
    if await store.delete_policy(uow.conn, project_id=project_id, model_id=model_id):
        uow.record(
            PromotionPolicyChanged(
                project_id=project_id, model_id=model_id, policy=None, actor=actor
            ),
            model_id or project_id,
        )


def policy_of(row: store.RecordLike | None) -> PromotionPolicy:
    """The policy a stored row says; all rules off for none."""
    if row is None:
        return PromotionPolicy()
    gate = row["metric_gate"]
    return PromotionPolicy(
        require_staging=row["require_staging"],
        approvals_required=row["approvals_required"],
        forbid_author_approval=row["forbid_author_approval"],
        metric_gate=None if gate is None else MetricGate.parse(gate),
    )


def policy_columns(policy: PromotionPolicy) -> dict[str, Any]:
    return {
        "require_staging": policy.require_staging,
        "approvals_required": policy.approvals_required,
        "forbid_author_approval": policy.forbid_author_approval,
        "metric_gate": None if policy.metric_gate is None else str(policy.metric_gate),
    }


def policy_view(
    row: store.RecordLike | None, *, project_id: UUID, model_id: UUID | None
) -> dict[str, Any]:
    """A policy as the API shows it: its rules and their `source` (`model`, `project`, or
    `none`, every rule off)."""
    if row is None:
        return {
            "project_id": project_id,
            "model_id": model_id,
            "source": "none",
            **policy_columns(PromotionPolicy()),
            "updated_by": None,
            "updated_at": None,
        }
    source = "project" if row["model_id"] is None else "model"
    return {
        "project_id": project_id,
        "model_id": model_id,
        "source": source,
        **{
            k: row[k]
            for k in (
                "require_staging",
                "approvals_required",
                "forbid_author_approval",
                "metric_gate",
                "updated_by",
                "updated_at",
            )
        },
    }


def request_view(request: store.RecordLike, approvals: Sequence[store.RecordLike]) -> dict:
    return {**dict(request), "approvals": [dict(a) for a in approvals]}


async def _pending_request(uow: UnitOfWork, request_id: UUID) -> tuple[store.Record, store.Record]:
    """The request and its version, both locked; 404 or 409 unless it is pending."""
    if not uow.begun:
        await uow.begin()
    request = await store.get_promotion_request(uow.conn, request_id, lock=True)
    if request is None:
        raise PromotionRequestNotFound(request_id)
    if request["status"] != "pending":
        raise PromotionRequestClosed(f"request {request_id} is {request['status']} already")
    return request, await _locked_version(uow, request["version_id"])


async def _locked_version(uow: UnitOfWork, version_id: UUID) -> store.Record:
    version = await store.version_for_transition(uow.conn, version_id, lock=True)
    if version is None:
        raise VersionNotFound(f"with id {version_id}")
    return version


def _candidate(version: store.RecordLike) -> Candidate:
    return Candidate(
        version["version"], ModelStage(version["stage"]), version["metrics"], version["created_by"]
    )


def _require_approver(approver: bool, actor: str, project_id: UUID) -> None:
    if not approver:
        raise Forbidden(
            f"{actor!r} is not an approver in project {project_id}; moving a version to "
            "production needs 'approver' or above",
            required_role=Role.APPROVER.value,
            project_id=str(project_id),
        )
