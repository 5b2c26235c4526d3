"""KServe against the fake Kubernetes API server, through the real client: the manifest the
cluster receives, and how its conditions map onto the deployment life cycle."""

import json
import socket
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.serving.domain import (
    DeploymentSpec,
    DeploymentState,
    Health,
    HealthPolicy,
    Resources,
    ScalingTarget,
    observed_state,
)
from services.serving.integrations.backend import DEPLOYMENT_ID_LABEL, DeploymentTarget
from services.serving.integrations.kserve import GROUP, PLURAL, KServeBackend, KServeConfig
from tests.fakes.kubernetes_api import FakeKubernetes

NAMESPACE = "models"
TOKEN = "kserve-token"


@pytest.fixture
def cluster():
    with FakeKubernetes(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def backend(cluster):
    backend = KServeBackend(KServeConfig(namespace=NAMESPACE, host=cluster.url, token=TOKEN))
    yield backend
    await backend.close()


def target(name: str = "churn-1a2b3c4d", **spec_fields) -> DeploymentTarget:
    spec = {
        "min_replicas": 1,
        "max_replicas": 4,
        "replica_count": 2,
        "autoscaling_metrics": (ScalingTarget("rps", 99.5),),
        "resource_requests": Resources(cpu="500m", memory="1Gi"),
        "resource_limits": Resources(cpu="2", memory="4Gi", gpus=1),
        "gpu_type": "a100-80gb",
    }
    return DeploymentTarget(
        resource_id=name,
        namespace=NAMESPACE,
        model_uri="s3://models/churn/3",
        spec=DeploymentSpec(**{**spec, **spec_fields}),
        labels={DEPLOYMENT_ID_LABEL: str(uuid.uuid4())},
        node_selector={"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
    )


async def test_the_cluster_receives_an_inference_service_with_every_field(cluster, backend):
    deployment = target()

    await backend.deploy(deployment)

    isvc = cluster.custom_object(GROUP, PLURAL, deployment.resource_id, NAMESPACE)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    assert isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["labels"][DEPLOYMENT_ID_LABEL] == deployment.labels[DEPLOYMENT_ID_LABEL]
    assert isvc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "modelplane"
    assert isvc["metadata"]["annotations"] == {"autoscaling.knative.dev/initial-scale": "2"}
    predictor = isvc["spec"]["predictor"]
    assert predictor["minReplicas"] == 1
    assert predictor["maxReplicas"] == 4
    assert predictor["scaleMetric"] == "rps"
    assert predictor["scaleTarget"] == 100
    assert predictor["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert predictor["model"] == {
        "modelFormat": {"name": "mlflow"},
        "protocolVersion": "v2",
        "storageUri": "s3://models/churn/3",
        "resources": {
            "requests": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"},
            "limits": {"cpu": "2", "memory": "4Gi", "nvidia.com/gpu": "1"},
        },
    }


async def test_deploying_again_patches_the_resource_to_the_new_spec(cluster, backend):
    await backend.deploy(target())

    await backend.deploy(
        target(
            autoscaling_metrics=(),
            max_replicas=6,
            resource_limits=Resources(cpu="2"),
            gpu_type=None,
        )
    )

    isvc = cluster.custom_object(GROUP, PLURAL, "churn-1a2b3c4d", NAMESPACE)
    predictor = isvc["spec"]["predictor"]
    assert cluster.received("PATCH", "/inferenceservices/churn-1a2b3c4d")
    assert predictor["maxReplicas"] == 6
    assert "scaleMetric" not in predictor and "scaleTarget" not in predictor
    assert predictor["model"]["resources"]["limits"] == {"cpu": "2"}
    assert isvc["metadata"]["generation"] == 2


def conditions(
    ready: str, predictor: str | None = None, reason: str = "", message: str = ""
) -> list[dict]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    found = [
        {
            "type": "Ready",
            "status": ready,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
        }
    ]
    if predictor is not None:
        found.append(
            {
                "type": "PredictorReady",
                "status": predictor,
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }
        )
    return found


async def next_state(backend, current: DeploymentState, name: str = "churn-1a2b3c4d"):
    """The state the status moves a deployment to, seen as often as the policy asks."""
    status = await backend.status(name, NAMESPACE)
    now = datetime.now(UTC)
    change = observed_state(
        current,
        status.observation,
        requested_at=now,
        unreachable_since=None,
        now=now,
        bad_looks=HealthPolicy().degrade_after,
    )
    return status, (change.state if change else None)


async def test_ready_not_ready_and_failed_conditions_map_to_healthy_degraded_and_failed(
    cluster, backend
):
    await backend.deploy(target())
    name = "churn-1a2b3c4d"

    unobserved, while_deploying = await next_state(backend, DeploymentState.DEPLOYING)
    cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        name,
        {
            "observedGeneration": 1,
            "conditions": conditions("True", "True"),
            "url": "http://churn.models.example.com",
        },
    )
    ready, healthy = await next_state(backend, DeploymentState.DEPLOYING)
    cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        name,
        {
            "observedGeneration": 1,
            "conditions": conditions("False", "False", "RevisionMissing", "scaling"),
        },
    )
    not_ready, degraded = await next_state(backend, DeploymentState.HEALTHY)
    cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        name,
        {
            "observedGeneration": 1,
            "conditions": conditions("False", "False"),
            "modelStatus": {
                "transitionStatus": "BlockedByFailedLoad",
                "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "no MLmodel file"},
            },
        },
    )
    failed, failed_state = await next_state(backend, DeploymentState.DEGRADED)

    assert unobserved.observation.health == Health.NOT_READY and while_deploying is None
    assert ready.observation.health == Health.READY and healthy == DeploymentState.HEALTHY
    assert ready.framework_status["url"] == "http://churn.models.example.com"
    assert not_ready.observation.health == Health.NOT_READY and degraded == DeploymentState.DEGRADED
    assert "scaling" in not_ready.observation.message
    assert failed.observation.health == Health.FAILED and failed_state == DeploymentState.FAILED
    assert failed.observation.message == "ModelLoadFailed: no MLmodel file"


async def test_a_ready_condition_for_an_older_generation_is_not_ready(cluster, backend):
    await backend.deploy(target())
    cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        "churn-1a2b3c4d",
        {"observedGeneration": 1, "conditions": conditions("True", "True")},
    )

    await backend.deploy(target(max_replicas=8))  # generation 2, not yet reconciled

    status, state = await next_state(backend, DeploymentState.HEALTHY)
    assert status.observation.health == Health.NOT_READY
    assert state == DeploymentState.DEGRADED


async def test_a_failed_revision_is_failed(cluster, backend):
    await backend.deploy(target())
    cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        "churn-1a2b3c4d",
        {
            "observedGeneration": 1,
            "conditions": conditions("False", "False", "RevisionFailed", "ImagePullBackOff"),
        },
    )

    status, state = await next_state(backend, DeploymentState.DEPLOYING)

    assert status.observation.health == Health.FAILED
    assert state == DeploymentState.FAILED


async def test_retiring_deletes_the_resource_and_its_status_is_then_missing(cluster, backend):
    await backend.deploy(target())

    await backend.retire("churn-1a2b3c4d", NAMESPACE)
    await backend.retire("churn-1a2b3c4d", NAMESPACE)  # already gone: fine

    assert cluster.custom_object(GROUP, PLURAL, "churn-1a2b3c4d", NAMESPACE) is None
    assert (await backend.status("churn-1a2b3c4d", NAMESPACE)).observation.health == Health.MISSING


async def test_an_unreachable_api_server_is_an_observation_not_an_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = KServeBackend(
        KServeConfig(host=f"http://127.0.0.1:{port}", token=TOKEN, request_timeout_seconds=2)
    )
    try:
        status = await backend.status("churn-1a2b3c4d", NAMESPACE)
    finally:
        await backend.close()

    assert status.observation.health == Health.UNREACHABLE


async def test_a_prediction_goes_to_the_services_address(cluster, backend):
    received: list[dict] = []

    class Model(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            received.append(
                {
                    "path": self.path,
                    "body": json.loads(self.rfile.read(int(self.headers["Content-Length"]))),
                }
            )
            answer = json.dumps({"predictions": [0.9]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        await backend.deploy(target())
        cluster.set_status(
            GROUP,
            PLURAL,
            NAMESPACE,
            "churn-1a2b3c4d",
            {
                "observedGeneration": 1,
                "conditions": conditions("True", "True"),
                "address": {"url": f"http://127.0.0.1:{server.server_address[1]}"},
            },
        )
        body = {"dataframe_split": {"columns": ["x"], "data": [[1.0]]}}

        prediction = await backend.predict("churn-1a2b3c4d", NAMESPACE, json.dumps(body).encode())
    finally:
        server.shutdown()

    assert prediction.status_code == 200
    assert json.loads(prediction.body) == {"predictions": [0.9]}
    assert received == [{"path": "/invocations", "body": body}]
