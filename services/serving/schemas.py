"""The serving service's request and response bodies. Requests carry plain types: the domain
checks every rule, so one 422 lists every violation."""

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.serving.domain import ServingFramework
from shared.environments import Env


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScalingTargetIn(Body):
    metric: str
    target: float


class ResourcesIn(Body):
    cpu: str | None = None
    memory: str | None = None
    gpus: int = 0


class DeploymentSpecIn(Body):
    min_replicas: int = 1
    max_replicas: int = 1
    replica_count: int | None = None
    autoscaling_metrics: list[ScalingTargetIn] = Field(default_factory=list)
    resource_requests: ResourcesIn = Field(default_factory=ResourcesIn)
    resource_limits: ResourcesIn = Field(default_factory=ResourcesIn)
    gpu_type: str | None = None


class EndpointCreate(Body):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=63)]
    project_id: UUID
    model_id: UUID
    model_version_id: UUID | None = None
    follow_stage: str | None = None
    serving_framework: ServingFramework = ServingFramework.RAY_SERVE
    namespace: str | None = None
    env: Env
    deployment: DeploymentSpecIn = Field(default_factory=DeploymentSpecIn)


class DeploymentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    endpoint_id: UUID
    model_id: UUID
    model_version_id: UUID
    version: str | None
    model_uri: str
    serving_framework: str
    framework_resource_id: str
    framework_namespace: str
    replica_count: int
    min_replicas: int
    max_replicas: int
    autoscaling_metrics: list[dict[str, Any]]
    resource_requests: dict[str, Any]
    resource_limits: dict[str, Any]
    gpu_type: str | None
    state: str
    state_reason: str | None
    framework_status: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deployed_at: datetime | None
    healthy_at: datetime | None
    retired_at: datetime | None


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    project_id: UUID
    name: str
    model_id: UUID
    model_version_id: UUID | None
    follow_stage: str | None
    serving_framework: str
    namespace: str
    env: str
    deployment_spec: dict[str, Any]
    live_deployment_id: UUID | None
    retired: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    deployments: list[DeploymentOut] = Field(default_factory=list)


class EndpointPage(BaseModel):
    items: list[EndpointOut]
    total: int
