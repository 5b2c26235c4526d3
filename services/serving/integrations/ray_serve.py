"""Ray Serve: each deployment is a Serve application named after its framework resource id,
written through the dashboard's declarative REST API, answering on `/<resource id>`.

`PUT /api/serve/applications/` replaces every application on the cluster, so each write reads
the running configs, changes only its own application and puts them all back, one write at a
time (this backend is the only writer of its cluster's Serve config). Health comes from the
application's status and its deployments' statuses.
"""

import asyncio
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx

from services.serving.domain import (
    AutoscalingMetric,
    Health,
    Observation,
    ServingFramework,
    parse_quantity,
)
from services.serving.integrations.backend import (
    BackendStatus,
    BackendUnreachable,
    DeploymentRejected,
    DeploymentTarget,
    Prediction,
)

logger = logging.getLogger(__name__)

APPLICATIONS_PATH = "/api/serve/applications/"
IMPORT_PATH = "services.serving.integrations.ray_app:build"
DEPLOYMENT_NAME = "ModelServer"
READY_DEPLOYMENT_STATUSES = {"HEALTHY", "UPSCALING", "DOWNSCALING"}
DEFAULT_TARGET_ONGOING_REQUESTS = 2


@dataclass(frozen=True)
class RayServeConfig:
    """Where the Ray cluster is: its dashboard (the control path) and Serve's HTTP proxy (the
    data path). `replica_cpus` is what a replica asks of Ray when its deployment requests no CPU:
    a fraction, so a small machine holds many endpoints. `tracking_uri` is the MLflow tracking
    server replicas load `mlflow-artifacts:`, `runs:` and `models:` URIs from."""

    dashboard_url: str = "http://127.0.0.1:8265"
    proxy_url: str = "http://127.0.0.1:8000"
    replica_cpus: float = 0.1
    request_timeout_seconds: float = 30.0
    prediction_timeout_seconds: float = 60.0
    tracking_uri: str | None = None


class RayServeRejected(DeploymentRejected):
    """The dashboard refused a Serve config (it answers 400 with Ray's reason)."""


def application_config(target: DeploymentTarget, config: RayServeConfig) -> dict[str, Any]:
    """The Serve application (ServeApplicationSchema) that serves `target`."""
    spec = target.spec
    actor_options: dict[str, Any] = {"num_cpus": config.replica_cpus}
    cpu = parse_quantity(spec.resource_requests.cpu) if spec.resource_requests.cpu else None
    if cpu is not None:
        actor_options["num_cpus"] = float(cpu)
    memory = (
        parse_quantity(spec.resource_requests.memory) if spec.resource_requests.memory else None
    )
    if memory is not None:
        actor_options["memory"] = int(memory)
    if spec.gpus:
        actor_options["num_gpus"] = spec.gpus
    deployment: dict[str, Any] = {"name": DEPLOYMENT_NAME, "ray_actor_options": actor_options}
    concurrency = next(
        (s.target for s in spec.autoscaling_metrics if s.metric == AutoscalingMetric.CONCURRENCY),
        None,
    )
    if spec.min_replicas == spec.max_replicas and concurrency is None:
        deployment["num_replicas"] = spec.max_replicas
    else:
        deployment["autoscaling_config"] = {
            "min_replicas": spec.min_replicas,
            "max_replicas": spec.max_replicas,
            "initial_replicas": spec.initial_replicas,
            "target_ongoing_requests": concurrency or DEFAULT_TARGET_ONGOING_REQUESTS,
        }
    app: dict[str, Any] = {
        "name": target.resource_id,
        "route_prefix": f"/{target.resource_id}",
        "import_path": IMPORT_PATH,
        "args": {"model_uri": target.model_uri, "labels": dict(target.labels)},
        "deployments": [deployment],
    }
    if config.tracking_uri:
        app["runtime_env"] = {"env_vars": {"MLFLOW_TRACKING_URI": config.tracking_uri}}
    return app


def health_of(app: dict[str, Any] | None) -> Observation:
    """What Serve's details of one application say of its health."""
    if app is None or app.get("status") == "DELETING":
        return Observation(Health.MISSING, "Serve has no such application")
    status, message = app.get("status"), app.get("message") or ""
    deployments = app.get("deployments") or {}
    if status == "DEPLOY_FAILED":
        failed = [
            d.get("message") for d in deployments.values() if d.get("status") == "DEPLOY_FAILED"
        ]
        return Observation(
            Health.FAILED, next((m for m in failed if m), message or "deploy failed")
        )
    if (
        status == "RUNNING"
        and deployments
        and all(d.get("status") in READY_DEPLOYMENT_STATUSES for d in deployments.values())
    ):
        return Observation(Health.READY)
    unready = [
        f"{name}: {d.get('status')}" + (f" ({d['message']})" if d.get("message") else "")
        for name, d in deployments.items()
        if d.get("status") not in READY_DEPLOYMENT_STATUSES
    ]
    return Observation(Health.NOT_READY, "; ".join([f"application {status}", *unready]))


def _raw_status(app: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": app.get("status"),
        "message": app.get("message") or "",
        "route_prefix": app.get("route_prefix"),
        "deployments": {
            name: {
                "status": d.get("status"),
                "message": d.get("message") or "",
                "replicas": len(d.get("replicas") or []),
            }
            for name, d in (app.get("deployments") or {}).items()
        },
    }


class RayServeBackend:
    framework = ServingFramework.RAY_SERVE

    def __init__(self, config: RayServeConfig) -> None:
        self.config = config
        self._control = httpx.AsyncClient(
            base_url=config.dashboard_url, timeout=config.request_timeout_seconds
        )
        # Predictions go through aiohttp: a tenth of httpx's CPU per request (bench/README.md).
        self._data: aiohttp.ClientSession | None = None
        self._writing = asyncio.Lock()

    async def _details(self) -> dict[str, Any]:
        try:
            response = await self._control.get(APPLICATIONS_PATH)
        except httpx.HTTPError as exc:
            raise BackendUnreachable(f"the Ray dashboard did not answer: {exc}") from exc
        if response.status_code != 200:
            raise BackendUnreachable(
                f"the Ray dashboard answered {response.status_code}: {response.text[:500]}"
            )
        return response.json()

    def _http_options(self, details: dict[str, Any]) -> dict[str, Any]:
        """Serve's HTTP options cannot change while it runs: keep the running ones, or start it
        on the proxy address this backend sends predictions to."""
        running = (
            details.get("http_options")
            if details.get("controller_info", {}).get("node_id")
            else None
        )
        if running:
            return {key: running[key] for key in ("host", "port") if key in running}
        proxy = urlsplit(self.config.proxy_url)
        return {"host": proxy.hostname or "127.0.0.1", "port": proxy.port or 8000}

    async def _put_applications(self, change: str, keep: Any, add: dict[str, Any] | None) -> None:
        """Read every application, keep those `keep` accepts, add `add`, and write them back."""
        async with self._writing:
            details = await self._details()
            applications = [
                app["deployed_app_config"]
                for name, app in (details.get("applications") or {}).items()
                if app.get("deployed_app_config") and app.get("status") != "DELETING" and keep(name)
            ]
            if add is not None:
                applications.append(add)
            body = {"http_options": self._http_options(details), "applications": applications}
            try:
                response = await self._control.put(APPLICATIONS_PATH, json=body)
            except httpx.HTTPError as exc:
                raise BackendUnreachable(f"the Ray dashboard did not answer: {exc}") from exc
            if response.status_code == 400:
                raise RayServeRejected(f"Serve refused to {change}: {response.text[:2000]}")
            if response.status_code != 200:
                raise BackendUnreachable(
                    f"the Ray dashboard answered {response.status_code}: {response.text[:500]}"
                )

    async def deploy(self, target: DeploymentTarget) -> None:
        app = application_config(target, self.config)
        await self._put_applications(
            f"deploy {target.resource_id}", lambda name: name != target.resource_id, app
        )

    async def status(self, resource_id: str, namespace: str) -> BackendStatus:
        try:
            details = await self._details()
        except BackendUnreachable as exc:
            return BackendStatus(Observation(Health.UNREACHABLE, str(exc)), {})
        app = (details.get("applications") or {}).get(resource_id)
        return BackendStatus(health_of(app), _raw_status(app) if app else {})

    async def retire(self, resource_id: str, namespace: str) -> None:
        await self._put_applications(
            f"retire {resource_id}", lambda name: name != resource_id, None
        )

    def _data_session(self) -> aiohttp.ClientSession:
        """Made on first use, inside the running event loop as aiohttp requires."""
        if self._data is None:
            self._data = aiohttp.ClientSession(
                base_url=self.config.proxy_url,
                timeout=aiohttp.ClientTimeout(total=self.config.prediction_timeout_seconds),
                skip_auto_headers=("User-Agent",),
            )
        return self._data

    async def predict(self, resource_id: str, namespace: str, body: bytes) -> Prediction:
        try:
            async with self._data_session().post(
                f"/{resource_id}", data=body, headers={"Content-Type": "application/json"}
            ) as response:
                return Prediction(
                    response.status,
                    await response.read(),
                    response.headers.get("Content-Type", "application/json"),
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendUnreachable(f"Serve's proxy did not answer: {exc}") from exc

    async def close(self) -> None:
        await self._control.aclose()
        if self._data is not None:
            await self._data.close()
