"""KServe: each deployment is an `InferenceService` (serving.kserve.io/v1beta1), a plain dict
driven through the `kubernetes` client's CustomObjectsApi in worker threads (the `kserve`
package pins an older kubernetes client than the platform's).

Health: `Ready` and `PredictorReady` conditions once the controller has observed the current
generation; a model the server could not load, or a spec KServe refused, is failed.
"""

import asyncio
import logging
import math
from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from services.serving.domain import Health, Observation, ServingFramework
from services.serving.integrations.backend import (
    MANAGED_BY,
    BackendStatus,
    BackendUnreachable,
    DeploymentRejected,
    DeploymentTarget,
    Prediction,
)
from shared.kubernetes import api_client, custom_object

logger = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = (
    "serving.kserve.io",
    "v1beta1",
    "inferenceservices",
    "InferenceService",
)
GPU_RESOURCE = "nvidia.com/gpu"
INITIAL_SCALE_ANNOTATION = "autoscaling.knative.dev/initial-scale"
# modelStatus.transitionStatus values after which KServe stops trying.
FAILED_TRANSITIONS = {"BlockedByFailedLoad", "InvalidSpec"}
FAILED_REASONS = {"RevisionFailed"}  # a predictor revision that cannot run (image, crash loop)
# The MLflow runtime (MLServer) answers the MLflow scoring protocol on this path.
SCORING_PATH = "/invocations"


@dataclass(frozen=True)
class KServeConfig:
    """Where InferenceServices go. Give `host` (and `token`), or a `kubeconfig`; neither means
    in-cluster. `namespace` is the default for endpoints that name none."""

    namespace: str = "default"
    host: str | None = None
    token: str | None = None
    ca_cert: str | None = None
    verify_ssl: bool = True
    kubeconfig: str | None = None
    context: str | None = None
    request_timeout_seconds: float = 30.0
    prediction_timeout_seconds: float = 60.0


def build_api_client(config: KServeConfig) -> k8s.ApiClient:
    return api_client(
        host=config.host,
        token=config.token,
        ca_cert=config.ca_cert,
        verify_ssl=config.verify_ssl,
        kubeconfig=config.kubeconfig,
        context=config.context,
    )


def _resources(cpu: str | None, memory: str | None, gpus: int) -> dict[str, str | None]:
    return {"cpu": cpu, "memory": memory, GPU_RESOURCE: str(gpus) if gpus else None}


def build_inference_service(target: DeploymentTarget) -> dict[str, Any]:
    """The InferenceService that serves `target`. Fields it does not set are explicit nulls in
    the predictor, so a merge patch of this manifest also removes what an older one set."""
    spec = target.spec
    requests = _resources(spec.resource_requests.cpu, spec.resource_requests.memory, spec.gpus)
    limits = _resources(spec.resource_limits.cpu, spec.resource_limits.memory, spec.gpus)
    scaling = spec.autoscaling_metrics[0] if spec.autoscaling_metrics else None
    annotations = {
        INITIAL_SCALE_ANNOTATION: None if spec.replica_count is None else str(spec.replica_count)
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": target.resource_id,
            "namespace": target.namespace,
            "labels": {**MANAGED_BY, **target.labels},
            "annotations": annotations,
        },
        "spec": {
            "predictor": {
                "minReplicas": spec.min_replicas,
                "maxReplicas": spec.max_replicas,
                "scaleMetric": scaling.metric if scaling else None,
                "scaleTarget": math.ceil(scaling.target) if scaling else None,
                "nodeSelector": dict(target.node_selector) or None,
                "model": {
                    "modelFormat": {"name": "mlflow"},
                    "protocolVersion": "v2",
                    "storageUri": target.model_uri,
                    "resources": {"requests": requests, "limits": limits},
                },
            },
        },
    }


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _condition_message(condition: dict[str, Any]) -> str:
    reason, message = condition.get("reason") or "", condition.get("message") or ""
    text = ": ".join(part for part in (reason, message) if part)
    return f"{condition.get('type')} is {condition.get('status')}" + (f" ({text})" if text else "")


def health_of(obj: dict[str, Any]) -> Observation:
    """What an InferenceService's status says of its health."""
    status = obj.get("status") or {}
    model_status = status.get("modelStatus") or {}
    failure = model_status.get("lastFailureInfo") or {}
    if (
        model_status.get("transitionStatus") in FAILED_TRANSITIONS
        or (model_status.get("states") or {}).get("targetModelState") == "FailedToLoad"
    ):
        detail = ": ".join(p for p in (failure.get("reason"), failure.get("message")) if p)
        return Observation(Health.FAILED, detail or f"model {model_status.get('transitionStatus')}")
    generation = (obj.get("metadata") or {}).get("generation") or 0
    observed = status.get("observedGeneration")
    if observed is None or observed < generation:
        return Observation(
            Health.NOT_READY, f"the controller has not yet observed generation {generation}"
        )
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    for kind in ("PredictorReady", "Ready"):
        condition = conditions.get(kind)
        if (
            condition is not None
            and condition.get("status") == "False"
            and condition.get("reason") in FAILED_REASONS
        ):
            return Observation(Health.FAILED, _condition_message(condition))
    ready = conditions.get("Ready")
    predictor = conditions.get("PredictorReady")
    if (
        ready is not None
        and ready.get("status") == "True"
        and (predictor is None or predictor.get("status") == "True")
    ):
        return Observation(Health.READY)
    not_ready = next(
        (c for c in (predictor, ready) if c is not None and c.get("status") != "True"), None
    )
    return Observation(
        Health.NOT_READY, _condition_message(not_ready) if not_ready else "no Ready condition yet"
    )


class KServeBackend:
    framework = ServingFramework.KSERVE

    def __init__(self, config: KServeConfig) -> None:
        self.config = config
        self._api_client = build_api_client(config)
        self._api = k8s.CustomObjectsApi(self._api_client)
        self._http = httpx.AsyncClient(timeout=config.prediction_timeout_seconds)

    async def deploy(self, target: DeploymentTarget) -> None:
        manifest = build_inference_service(target)
        try:
            try:
                await asyncio.to_thread(
                    self._api.create_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    target.namespace,
                    PLURAL,
                    _without_nulls(manifest),
                    _request_timeout=self.config.request_timeout_seconds,
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
                # Already there (a deploy repeated after a restart): bring it to this manifest.
                await asyncio.to_thread(
                    self._api.patch_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    target.namespace,
                    PLURAL,
                    target.resource_id,
                    {"metadata": manifest["metadata"], "spec": manifest["spec"]},
                    _request_timeout=self.config.request_timeout_seconds,
                )
        except ApiException as exc:
            if 400 <= (exc.status or 0) < 500 and exc.status not in (401, 403, 408, 429):
                raise DeploymentRejected(
                    f"the Kubernetes API refused the InferenceService: {exc.status} "
                    f"{exc.reason}: {(exc.body or '')[:1000]}"
                ) from exc
            raise BackendUnreachable(
                f"the Kubernetes API answered {exc.status}: {exc.reason}"
            ) from exc
        except HTTPError as exc:
            raise BackendUnreachable(f"the Kubernetes API did not answer: {exc}") from exc

    async def _get(self, resource_id: str, namespace: str) -> dict[str, Any] | None:
        try:
            answer = await asyncio.to_thread(
                self._api.get_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                resource_id,
                _request_timeout=self.config.request_timeout_seconds,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise BackendUnreachable(
                f"the Kubernetes API answered {exc.status}: {exc.reason}"
            ) from exc
        except HTTPError as exc:
            raise BackendUnreachable(f"the Kubernetes API did not answer: {exc}") from exc
        return custom_object(answer)

    async def status(self, resource_id: str, namespace: str) -> BackendStatus:
        try:
            obj = await self._get(resource_id, namespace)
        except BackendUnreachable as exc:
            return BackendStatus(Observation(Health.UNREACHABLE, str(exc)), {})
        if obj is None:
            return BackendStatus(
                Observation(Health.MISSING, f"InferenceService {namespace}/{resource_id} is gone"),
                {},
            )
        return BackendStatus(health_of(obj), obj.get("status") or {})

    async def retire(self, resource_id: str, namespace: str) -> None:
        try:
            await asyncio.to_thread(
                self._api.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                resource_id,
                _request_timeout=self.config.request_timeout_seconds,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise BackendUnreachable(
                    f"the Kubernetes API answered {exc.status}: {exc.reason}"
                ) from exc
        except HTTPError as exc:
            raise BackendUnreachable(f"the Kubernetes API did not answer: {exc}") from exc

    async def predict(self, resource_id: str, namespace: str, body: bytes) -> Prediction:
        obj = await self._get(resource_id, namespace)
        status = (obj or {}).get("status") or {}
        url = (status.get("address") or {}).get("url") or status.get("url")
        if not url:
            raise BackendUnreachable(f"InferenceService {namespace}/{resource_id} has no URL yet")
        try:
            response = await self._http.post(
                url.rstrip("/") + SCORING_PATH,
                content=body,
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise BackendUnreachable(f"{url} did not answer: {exc}") from exc
        return Prediction(
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/json"),
        )

    async def close(self) -> None:
        await self._http.aclose()
        self._api_client.close()
