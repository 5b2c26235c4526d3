"""Events published by the serving service on stream SERVING (subjects `serving.>`).

A deployment publishes one event per change of state, `serving.deployment.<state>`:
requested (created), deploying, healthy, degraded, failed, retired; and an endpoint whose new
deployment failed while an older one still serves publishes `serving.deployment.rolled_back`.
"""

from typing import Any
from uuid import UUID

from shared.events.envelope import EventData
from shared.events.stage_attempts import StageAttemptAnswer, StageCommandRefused


class DeploymentEvent(EventData, StageAttemptAnswer):
    """What every event about one deployment carries: where it runs and what it serves; the
    pipeline fields name the deploy stage attempt that asked for it, if any."""

    deployment_id: UUID
    endpoint_id: UUID
    endpoint_name: str
    project_id: UUID
    model_id: UUID
    model_version_id: UUID
    version: str | None
    env: str
    serving_framework: str
    framework_resource_id: str
    framework_namespace: str
    state: str


class DeploymentRequested(DeploymentEvent):
    """A deployment was created for a model version; the serving framework is asked next."""

    subject = "serving.deployment.requested"
    replica_count: int
    min_replicas: int
    max_replicas: int
    autoscaling_metrics: list[dict[str, Any]]
    resource_requests: dict[str, Any]
    resource_limits: dict[str, Any]
    gpu_type: str | None


class DeploymentDeploying(DeploymentEvent):
    """The serving framework accepted the deployment and is bringing it up."""

    subject = "serving.deployment.deploying"


class DeploymentHealthy(DeploymentEvent):
    """The deployment answers predictions; `live` says whether the endpoint's traffic is on it."""

    subject = "serving.deployment.healthy"
    live: bool


class DeploymentDegraded(DeploymentEvent):
    """The deployment is not ready, or its framework cannot be reached; it may recover."""

    subject = "serving.deployment.degraded"
    reason: str


class DeploymentFailed(DeploymentEvent):
    subject = "serving.deployment.failed"
    reason: str


class DeploymentRetired(DeploymentEvent):
    """The deployment was removed from its framework: replaced by a newer one, or undeployed."""

    subject = "serving.deployment.retired"
    reason: str


class DeploymentRolledBack(EventData):
    """A rollout failed, so the endpoint keeps serving the deployment that served before it."""

    subject = "serving.deployment.rolled_back"
    endpoint_id: UUID
    endpoint_name: str
    project_id: UUID
    model_id: UUID
    failed_deployment_id: UUID
    failed_model_version_id: UUID
    serving_deployment_id: UUID
    serving_model_version_id: UUID
    reason: str


class ServingStageCommandRefused(StageCommandRefused):
    """Serving would not deploy what a pipeline's deploy stage asked for."""

    subject = "serving.stage_command.refused"
