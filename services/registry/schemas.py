"""The registry's request and response bodies."""

import math
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    FiniteFloat,
    StrictBool,
    StringConstraints,
    Tag,
)

from services.registry.domain import MAX_APPROVALS, MAX_VERSION_LENGTH, ModelStage


def storable(value: str) -> str:
    """Refuses strings Postgres cannot store in text or jsonb: with NUL, or with half of a
    surrogate pair (which JSON's `\\ud800` escapes can make)."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (U+0000)")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError("must not contain a lone surrogate (U+D800 to U+DFFF)") from None
    return value


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("must not be null; leave the field out to keep it as it is")
    return value


# How deep a version's metadata may nest: replies carry it inside pages of versions, and
# their serializer (pydantic's, as orjson) stops at 255 levels in all.
MAX_METADATA_DEPTH = 64


def _json_storable(document: Any) -> Any:
    """Checks every key and string of a JSON document as `storable`, every number finite
    (jsonb has no NaN or Infinity) and its nesting within `MAX_METADATA_DEPTH`; the path of
    the first that is not is in the message. A loop, not recursion: the JSON parser lets a
    document nest deeper than Python recurses."""
    pending: list[tuple[str, int, Any]] = [("", 0, document)]
    while pending:
        path, depth, value = pending.pop()
        if isinstance(value, str):
            try:
                storable(value)
            except ValueError as refused:
                raise ValueError(f"{path or 'a key'} {refused}") from None
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{path} must be a finite number, not {value}")
        elif isinstance(value, dict | list) and depth > MAX_METADATA_DEPTH:
            raise ValueError(f"{path} nests deeper than {MAX_METADATA_DEPTH} levels")
        elif isinstance(value, dict):
            for key, item in value.items():
                pending.append((f"{path}.{key}" if path else key, depth + 1, item))
                pending.append((f"a key of {path}" if path else "", depth, key))  # checked first
        elif isinstance(value, list):
            pending.extend((f"{path}[{n}]", depth + 1, item) for n, item in enumerate(value))
    return document


STORABLE = AfterValidator(storable)
NotNull = BeforeValidator(_not_null)
Text = Annotated[str, STORABLE]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), STORABLE, NotNull
]
VersionLabel = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_VERSION_LENGTH, pattern=r"^[^/]+$"
    ),
    STORABLE,
]
RunId = Annotated[str, StringConstraints(max_length=255), STORABLE]
Comment = Annotated[str, StringConstraints(max_length=10_000), STORABLE]
TagList = list[Annotated[str, StringConstraints(min_length=1), STORABLE]]
TagMap = dict[Text, Text]


def _tags_form(value: Any) -> str | None:
    return "list" if isinstance(value, list) else "object" if isinstance(value, dict) else None


TAGS = Field(
    description="Tags in either of two forms, kept and returned in the form sent: a list of "
    'labels (`["risk", "credit"]`, the registry design\'s form, and the default, `[]`), or an '
    'object of key and value (`{"team": "risk"}`, as MLflow\'s tags). An update replaces them '
    "whole, in the form it sends.",
    examples=[["risk", "credit"], {"team": "risk"}],
)
Tags = Annotated[
    Annotated[TagList, Tag("list")] | Annotated[TagMap, Tag("object")],
    Discriminator(
        _tags_form,
        custom_error_type="tags_type",
        custom_error_message="Input should be a list of strings or an object of strings",
    ),
    NotNull,
    TAGS,
]
StoredTags = Annotated[list[str] | dict[str, str], TAGS]
Metrics = dict[Text, FiniteFloat]
Metadata = Annotated[dict[Text, Any], AfterValidator(_json_storable), NotNull]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def omittable(**kwargs: Any) -> Any:
    """A field an update may leave out, which then stays as it is; null is refused (by the
    field's `NotNull`), so no `default` is documented."""
    return Field(default=None, json_schema_extra=_no_default, **kwargs)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelCreate(Body):
    name: Name
    project_id: UUID
    description: Text | None = None
    tags: Tags = Field(default_factory=list)


class ModelUpdate(Body):
    name: Name = omittable()
    description: Text | None = None
    tags: Tags = omittable()


class VersionCreate(Body):
    version: VersionLabel | None = Field(
        default=None, description="The version's label; numbered 1, 2, 3, ... when omitted."
    )
    description: Text | None = None
    run_id: RunId | None = None
    artifact_version_id: UUID | None = None
    artifact_uri: Text | None = None
    metrics: Annotated[Metrics, NotNull] = Field(default_factory=dict)
    tags: Tags = Field(default_factory=list)
    metadata: Metadata = Field(default_factory=dict)


class VersionUpdate(Body):
    description: Text | None = None
    tags: Tags = omittable()
    metadata: Metadata = omittable()


class TransitionRequest(Body):
    stage: ModelStage
    comment: Comment | None = None


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ModelOut(Out):
    id: UUID
    name: str
    project_id: UUID
    description: str | None
    tags: StoredTags
    created_by: str
    created_at: datetime
    updated_at: datetime = Field(
        description="When the model was last changed, or a version of it created, moved to "
        "another stage or deleted (as MLflow's last_updated_timestamp)"
    )


class VersionOut(Out):
    id: UUID
    model_id: UUID
    version: str
    description: str | None
    stage: ModelStage
    run_id: str | None
    artifact_version_id: UUID | None
    artifact_uri: str | None
    metrics: dict[str, float]
    tags: StoredTags
    metadata: dict[str, Any] = Field(validation_alias="meta")
    approved_by: str | None
    approved_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class VersionServing(BaseModel):
    """One deployment of a version, as the serving service's events last said."""

    endpoint_id: UUID
    endpoint_name: str
    deployment_id: UUID
    state: str
    env: str
    serving_framework: str
    changed_at: datetime


class VersionDetail(VersionOut):
    serving: list[VersionServing] = Field(
        default_factory=list,
        description="Where the version serves: its deployments not yet retired, oldest first.",
    )


class ModelDetail(ModelOut):
    versions: list[VersionDetail] = Field(description="The newest versions, newest first.")
    versions_total: int


class TransitionOut(Out):
    id: UUID
    version_id: UUID
    model_id: UUID
    from_stage: ModelStage
    to_stage: ModelStage
    comment: str | None
    transitioned_by: str
    transitioned_at: datetime


class TransitionResult(BaseModel):
    version: VersionOut
    transitions: list[TransitionOut] = Field(
        description="What the transition recorded: the archive of the version it replaced in "
        "production, if any, then its own."
    )


class ModelPage(BaseModel):
    items: list[ModelOut]
    total: int


class VersionPage(BaseModel):
    items: list[VersionOut]
    total: int
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class TransitionPage(BaseModel):
    items: list[TransitionOut]
    total: int


class ModelSummary(BaseModel):
    id: UUID
    name: str
    project_id: UUID
    versions: int
    by_stage: dict[ModelStage, int]
    latest_version: str | None
    production_version: str | None
    updated_at: datetime


class SummaryPage(BaseModel):
    items: list[ModelSummary]
    total: int
    versions: int
    by_stage: dict[ModelStage, int]


class PolicyRules(Body):
    """A promotion policy, set whole: a rule left out is off."""

    require_staging: StrictBool = Field(
        default=False, description="Only a version in staging may move to production."
    )
    approvals_required: int = Field(
        default=0,
        ge=0,
        le=MAX_APPROVALS,
        description="0: a move to production by an approver is its own approval. N: such a move "
        "is recorded as a pending request, and made when N distinct approvers have approved it.",
    )
    forbid_author_approval: StrictBool = Field(
        default=False, description="The version's author (its creator) may not approve it."
    )
    metric_gate: Annotated[Text, StringConstraints(max_length=1000)] | None = Field(
        default=None,
        description="Conditions the version's metrics must meet, `<metric> <op> <number>` (op "
        "one of >=, >, <=, <, ==, !=) joined by `and`; a missing metric fails. A bad one is "
        "422 `invalid-metric-gate`.",
        examples=["auc >= 0.9", "auc >= 0.9 and loss < 0.2"],
    )


class PolicyOut(BaseModel):
    project_id: UUID
    model_id: UUID | None = Field(description="Set for a model's policy (the view of a model).")
    source: Literal["model", "project", "none"] = Field(
        description="Whose rules these are: the model's override, its project's, or none set "
        "(every rule off)."
    )
    require_staging: bool
    approvals_required: int
    forbid_author_approval: bool
    metric_gate: str | None
    updated_by: str | None
    updated_at: datetime | None


class ApprovalIn(Body):
    comment: Comment | None = None


class CloseIn(Body):
    reason: Comment | None = None


class ApprovalOut(Out):
    approver: str
    comment: str | None
    approved_at: datetime


class PromotionRequestOut(Out):
    id: UUID
    version_id: UUID
    model_id: UUID
    project_id: UUID
    to_stage: ModelStage
    comment: str | None
    status: Literal["pending", "approved", "rejected", "withdrawn", "superseded"]
    approvals_required: int = Field(description="As the policy said when the request was made.")
    approvals: list[ApprovalOut] = Field(description="From distinct approvers, oldest first.")
    requested_by: str
    requested_at: datetime
    closed_by: str | None
    closed_at: datetime | None
    reason: str | None


class PromotionRequestPage(BaseModel):
    items: list[PromotionRequestOut]
    total: int


class ApprovalResult(BaseModel):
    request: PromotionRequestOut
    version: VersionOut | None = Field(
        description="The version as moved, when this approval was the last one it needed."
    )
    transitions: list[TransitionOut]
