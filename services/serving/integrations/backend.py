"""The one interface every serving framework is driven through, and what it answers."""

from dataclasses import dataclass, field
from typing import Any, Protocol

from services.serving.domain import DeploymentSpec, Observation, ServingFramework

ENDPOINT_ID_LABEL = "modelplane.dev/endpoint-id"
DEPLOYMENT_ID_LABEL = "modelplane.dev/deployment-id"
MODEL_VERSION_ID_LABEL = "modelplane.dev/model-version-id"
MANAGED_BY = {"app.kubernetes.io/managed-by": "modelplane"}


@dataclass(frozen=True)
class DeploymentTarget:
    """What a framework needs to run one deployment: one framework resource serving one version."""

    resource_id: str
    namespace: str
    model_uri: str  # the version's MLflow model, as its artifact URI
    spec: DeploymentSpec
    labels: dict[str, str] = field(default_factory=dict)
    node_selector: dict[str, str] = field(default_factory=dict)  # from the GPU type's node label


@dataclass(frozen=True)
class BackendStatus:
    """The framework's answer about one deployment: its health, and its raw status as it said it."""

    observation: Observation
    framework_status: dict[str, Any]


@dataclass(frozen=True)
class Prediction:
    """The model's answer, passed on as the framework gave it."""

    status_code: int
    body: bytes
    content_type: str


class BackendUnreachable(Exception):
    """The framework's control or data path did not answer; the deployment may be fine."""


class DeploymentRejected(Exception):
    """The framework refused the deployment as asked (its reason in the message): it fails."""


class ServingBackend(Protocol):
    framework: ServingFramework

    async def deploy(self, target: DeploymentTarget) -> None:
        """Create the deployment's resource, or update it to `target`; safe to repeat."""
        ...

    async def status(self, resource_id: str, namespace: str) -> BackendStatus:
        """Never raises for an unreachable framework: that is an observation too."""
        ...

    async def retire(self, resource_id: str, namespace: str) -> None:
        """Remove the deployment's resource; one already gone is fine."""
        ...

    async def predict(self, resource_id: str, namespace: str, body: bytes) -> Prediction:
        """Forward an MLflow scoring-protocol request; BackendUnreachable when nothing answers."""
        ...

    async def close(self) -> None: ...
