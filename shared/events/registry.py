"""Events published by the registry service on stream REGISTRY (subjects `registry.>`)."""

from typing import Any
from uuid import UUID

from pydantic import Field

from shared.events.envelope import EventData
from shared.events.stage_attempts import StageAttemptAnswer, StageCommandDone, StageCommandRefused

# Tags come in two forms (a list of labels, or an object of key and value), and `tags` was
# an object from the first contract on: it keeps that meaning, `{}` for tags given as a list,
# and `tag_list`, added since, holds such a list (null for an object).
TAG_LIST = Field(
    default=None, description="The tags, when given as a list of labels; `tags` is then {}."
)


def tag_fields(tags: dict[str, str] | list[str]) -> dict[str, Any]:
    """`tags` and `tag_list` of an event for tags in either form."""
    return {"tags": {}, "tag_list": tags} if isinstance(tags, list) else {"tags": tags}


class ModelRegistered(EventData):
    subject = "registry.model.registered"
    model_id: UUID
    name: str
    project_id: UUID
    description: str | None
    tags: dict[str, str]
    tag_list: list[str] | None = TAG_LIST
    created_by: str


class ModelUpdated(EventData):
    subject = "registry.model.updated"
    model_id: UUID
    name: str
    project_id: UUID
    changes: dict[str, Any]


class ModelDeleted(EventData):
    subject = "registry.model.deleted"
    model_id: UUID
    name: str
    project_id: UUID
    deleted_versions: int


class ModelVersionCreated(EventData, StageAttemptAnswer):
    """A new version; the pipeline fields name the stage attempt that asked for it, if any."""

    subject = "registry.model_version.created"
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str
    stage: str
    run_id: str | None
    artifact_uri: str | None
    metrics: dict[str, float]
    tags: dict[str, str] = Field(default_factory=dict)
    tag_list: list[str] | None = TAG_LIST
    created_by: str


class ModelVersionUpdated(EventData):
    subject = "registry.model_version.updated"
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str
    changes: dict[str, Any]


class ModelVersionDeleted(EventData):
    subject = "registry.model_version.deleted"
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str


class ModelVersionTransitioned(EventData, StageAttemptAnswer):
    """A version moved; the pipeline fields name the stage attempt that asked for it, if any."""

    subject = "registry.model_version.transitioned"
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str
    from_stage: str
    to_stage: str
    comment: str | None
    actor: str


class RegistryStageCommandDone(StageCommandDone):
    """The registry registered or moved the version a pipeline stage asked for."""

    subject = "registry.stage_command.done"
    model_id: UUID
    version_id: UUID
    version: str
    stage: str


class RegistryStageCommandRefused(StageCommandRefused):
    """The registry would not register or promote what a pipeline stage asked for."""

    subject = "registry.stage_command.refused"


class PromotionPolicyChanged(EventData):
    """A project's promotion policy (`model_id` null) or a model's override was set or, with
    `policy` null, cleared."""

    subject = "registry.promotion_policy.changed"
    project_id: UUID
    model_id: UUID | None
    policy: dict[str, Any] | None
    actor: str


class ModelVersionApprovalRequested(EventData):
    """A move to production that the promotion policy holds until `approvals_required`
    distinct approvers approve it."""

    subject = "registry.model_version.approval_requested"
    request_id: UUID
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str
    to_stage: str
    approvals_required: int
    comment: str | None
    requested_by: str


class ModelVersionApproved(EventData):
    """One approval of a promotion request; the one that makes `approvals` reach
    `approvals_required` moves the version (ModelVersionTransitioned follows)."""

    subject = "registry.model_version.approved"
    request_id: UUID
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str
    approver: str
    approvals: int
    approvals_required: int
    comment: str | None


class ModelVersionApprovalClosed(EventData):
    """A promotion request ended without a move: `rejected` by an approver, `withdrawn` by who
    made it, or `superseded` by its version's move to archived or none (`closed_by` made it)."""

    subject = "registry.model_version.approval_closed"
    request_id: UUID
    model_id: UUID
    model_name: str
    version_id: UUID
    version: str
    status: str
    closed_by: str
    reason: str | None
