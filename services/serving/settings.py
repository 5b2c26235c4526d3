"""The serving service's configuration (`MODELPLANE_*` environment variables)."""

from datetime import timedelta

from pydantic import Field

from services.serving.domain import HealthPolicy
from services.serving.integrations.kserve import KServeConfig
from services.serving.integrations.ray_serve import RayServeConfig
from shared.integrations import ServingBackend
from shared.settings import ServiceSettings


class ServingSettings(ServiceSettings):
    serving_host: str = "127.0.0.1"
    serving_port: int = 8004
    # The frameworks enabled in an env the gateway has no serving IntegrationConfig for.
    serving_frameworks: list[ServingBackend] = Field(
        default_factory=lambda: [ServingBackend.RAY_SERVE]
    )
    # The Kubernetes namespace of an endpoint that names none (an env's config may name another).
    serving_namespace: str = "default"
    # The health watcher: how often it looks, and how long it waits at most for a framework
    # that does not answer before asking again.
    serving_watch_seconds: float = 1.0
    serving_watch_max_backoff_seconds: float = 30.0
    # A deployment never ready this long after it was requested is failed; one whose framework
    # has not answered this long is failed too (degraded until then).
    serving_deploy_timeout_seconds: float = 900.0
    serving_unreachable_timeout_seconds: float = 600.0
    # A healthy deployment is degraded only when this many looks in a row find it unwell.
    serving_degrade_after_looks: int = Field(default=3, ge=1)
    # Ray Serve: the cluster's dashboard (control) and Serve's HTTP proxy (predictions). Serve's
    # own default port, 8000, is the gateway's here.
    ray_dashboard_url: str = "http://127.0.0.1:8265"
    ray_serve_url: str = "http://127.0.0.1:8100"
    ray_replica_cpus: float = 0.1
    # The MLflow tracking server a version's artifact URI is resolved against (`make up`'s own).
    mlflow_tracking_uri: str = ""
    # KServe: the cluster's API server; none means in-cluster credentials.
    kubernetes_host: str | None = None
    kubernetes_token: str | None = None
    kubernetes_verify_ssl: bool = True
    prediction_timeout_seconds: float = 60.0
    # How long a process keeps where an endpoint's predictions go before reading it again: a
    # switch is noticed at once by the retired deployment's answer; an endpoint undeployed
    # through another replica of the service may answer there this long.
    serving_route_seconds: float = 1.0

    def health_policy(self) -> HealthPolicy:
        return HealthPolicy(
            deploy_timeout=timedelta(seconds=self.serving_deploy_timeout_seconds),
            unreachable_timeout=timedelta(seconds=self.serving_unreachable_timeout_seconds),
            degrade_after=self.serving_degrade_after_looks,
        )

    def ray_serve(self) -> RayServeConfig:
        return RayServeConfig(
            dashboard_url=self.ray_dashboard_url,
            proxy_url=self.ray_serve_url,
            replica_cpus=self.ray_replica_cpus,
            tracking_uri=self.mlflow_tracking_uri or None,
            prediction_timeout_seconds=self.prediction_timeout_seconds,
        )

    def kserve(self) -> KServeConfig:
        return KServeConfig(
            namespace=self.serving_namespace,
            host=self.kubernetes_host,
            token=self.kubernetes_token,
            verify_ssl=self.kubernetes_verify_ssl,
            prediction_timeout_seconds=self.prediction_timeout_seconds,
        )
