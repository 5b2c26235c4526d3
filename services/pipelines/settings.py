"""The pipelines service's configuration (`MODELPLANE_*` environment variables)."""

from pydantic import Field

from services.pipelines.domain import OrchestrationSystem
from services.pipelines.integrations.argo import ArgoConfig
from shared.environments import Env
from shared.settings import ServiceSettings


class PipelinesSettings(ServiceSettings):
    pipelines_host: str = "127.0.0.1"
    pipelines_port: int = 8005
    # How often stages at work are checked against their timeouts.
    pipelines_deadline_sweep_seconds: float = 5.0
    # Which system runs each env's pipelines; unnamed envs run on the local engine.
    # E.g. MODELPLANE_PIPELINES_ORCHESTRATION='{"prod": "argo_workflows"}'.
    pipelines_orchestration: dict[Env, OrchestrationSystem] = Field(default_factory=dict)
    # How often the workflows of Argo runs are read back.
    pipelines_argo_poll_seconds: float = 2.0
    argo_namespace: str = "default"
    argo_image: str = "python:3.11-slim"
    argo_api_url: str = "http://modelplane-gateway:8000"
    argo_api_token_secret: str = "modelplane-api-token"
    argo_service_account: str | None = None
    # The Kubernetes API Argo's workflows go to; none: in-cluster, else the kubeconfig.
    kubernetes_host: str | None = None
    kubernetes_token: str | None = None
    kubernetes_verify_ssl: bool = True

    def orchestration(self, env: str) -> OrchestrationSystem:
        return self.pipelines_orchestration.get(Env(env), OrchestrationSystem.LOCAL)

    @property
    def uses_argo(self) -> bool:
        return OrchestrationSystem.ARGO_WORKFLOWS in self.pipelines_orchestration.values()

    def argo_config(self) -> ArgoConfig:
        return ArgoConfig(
            namespace=self.argo_namespace,
            image=self.argo_image,
            api_url=self.argo_api_url,
            api_token_secret=self.argo_api_token_secret,
            service_account=self.argo_service_account,
        )
