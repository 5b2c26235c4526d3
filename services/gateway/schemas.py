"""Request and response bodies of the gateway's own API."""

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from shared.auth import Role
from shared.environments import Env
from shared.validation import JsonObject, Text


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class TokenCreate(BaseModel):
    subject: Text = Field(min_length=1, max_length=200)
    role: Role | None = Field(
        description="The platform role, held in every project; null: only the subject's "
        "project memberships count."
    )
    projects: list[UUID] | None = Field(
        default=None,
        max_length=1000,
        description="Limit the token to these projects, whatever its roles; null: no limit.",
    )


class Token(_Out):
    id: UUID
    subject: str
    role: Role | None
    projects: list[UUID] | None = Field(validation_alias=AliasChoices("project_ids", "projects"))
    created_at: datetime
    revoked_at: datetime | None


class CreatedToken(Token):
    token: str = Field(description="The plaintext token. Shown once; store it now.")


class TokenList(BaseModel):
    items: list[Token]
    total: int


class ProjectCreate(BaseModel):
    name: Text = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")
    description: Text | None = Field(default=None, max_length=10_000)


class Project(_Out):
    id: UUID
    name: str
    description: str | None
    created_by: str
    created_at: datetime


class ProjectPage(BaseModel):
    items: list[Project]
    total: int
    limit: int
    offset: int


class MemberPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class Member(_Out):
    project_id: UUID
    subject: str
    role: Role
    updated_by: str
    created_at: datetime
    updated_at: datetime


class MemberList(BaseModel):
    items: list[Member]
    total: int


class IntegrationConfigPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Text = Field(min_length=1, max_length=64, examples=["kubernetes"])
    settings: JsonObject = Field(
        default_factory=dict,
        description='The backend\'s options, e.g. {"namespace": "ml-prod"}. Every service '
        "that uses the concern receives them in IntegrationConfigChanged: no secrets here.",
    )


class IntegrationConfig(_Out):
    env: Env
    concern: str
    backend: str
    settings: dict[str, Any]
    updated_by: str
    created_at: datetime
    updated_at: datetime


class IntegrationConfigList(BaseModel):
    items: list[IntegrationConfig]
    total: int


class LineageNode(BaseModel):
    kind: str
    id: str
    data: dict[str, Any] = Field(description="The node as the service that owns it shows it")


class LineageRef(BaseModel):
    kind: str
    id: str


class LineageEdge(BaseModel):
    from_: LineageRef = Field(alias="from")
    to: LineageRef


class Lineage(BaseModel):
    """dataset version -> job -> run -> model version -> deployment, up and down from `start`."""

    start: LineageRef
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    truncated: bool = Field(description="True when the walk stopped at its node limit")
