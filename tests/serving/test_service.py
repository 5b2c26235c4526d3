"""The serving service end to end on real Postgres and NATS, its KServe backend on the fake
Kubernetes API: endpoints and their rules, the closed loop from a promotion to a healthy
deployment, switches, rollbacks, redeliveries, and predictions."""

import asyncio
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.serving.integrations.kserve import GROUP, PLURAL
from services.serving.models import metadata
from shared.auth import Role
from shared.events import CloudEvent
from shared.events.jobs import GpuTypeOptionsChanged
from shared.events.registry import ModelVersionCreated, ModelVersionTransitioned
from tests.bus import publish, stream_events, wait_consumed
from tests.credentials import credential_headers
from tests.migrations import schema_differences
from tests.serving.conftest import NAMESPACE, PROJECT

pytestmark = pytest.mark.timeout(300)

READY = {
    "observedGeneration": 1,
    "conditions": [
        {"type": "Ready", "status": "True"},
        {"type": "PredictorReady", "status": "True"},
    ],
}
FAILED_LOAD = {
    "observedGeneration": 1,
    "conditions": [
        {"type": "Ready", "status": "False"},
        {"type": "PredictorReady", "status": "False"},
    ],
    "modelStatus": {
        "transitionStatus": "BlockedByFailedLoad",
        "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "no MLmodel"},
    },
}


async def until(check, timeout: float = 60.0, every: float = 0.1):
    """The first truthy result of `check()`, or the last one when time ran out."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(every)


class Registry:
    """What the registry would publish about one model's versions."""

    def __init__(self, nc) -> None:
        self.nc = nc
        self.model_id = uuid.uuid4()
        self.name = f"churn-{self.model_id.hex[:6]}"
        self.stages: dict[uuid.UUID, str] = {}

    async def create_version(self, number: int, artifact_uri: str | None = None) -> uuid.UUID:
        version_id = uuid.uuid4()
        self.stages[version_id] = "none"
        data = ModelVersionCreated(
            model_id=self.model_id,
            model_name=self.name,
            version_id=version_id,
            version=str(number),
            stage="none",
            run_id=None,
            artifact_uri=artifact_uri or f"s3://models/{self.name}/{number}",
            metrics={},
            created_by="alice@example.com",
        )
        await publish(self.nc, CloudEvent.wrap(data, service="registry", aggregate_id=version_id))
        return version_id

    def transition(self, version_id: uuid.UUID, stage: str = "production") -> CloudEvent:
        data = ModelVersionTransitioned(
            model_id=self.model_id,
            model_name=self.name,
            version_id=version_id,
            version="?",
            from_stage=self.stages[version_id],
            to_stage=stage,
            comment=None,
            actor="alice@example.com",
        )
        self.stages[version_id] = stage
        return CloudEvent.wrap(data, service="registry", aggregate_id=version_id)


def endpoint_body(registry: Registry, **fields) -> dict:
    body = {
        "name": f"ep-{uuid.uuid4().hex[:8]}",
        "project_id": str(PROJECT),
        "model_id": str(registry.model_id),
        "follow_stage": "production",
        "serving_framework": "kserve",
        "env": "dev",
    }
    return {**body, **fields}


async def endpoint_of(client, endpoint_id) -> dict:
    response = await client.get(f"/endpoints/{endpoint_id}")
    assert response.status_code == 200, response.text
    return response.json()


async def serving_events(nc, deployment_id) -> list[str]:
    return [
        e.type.removeprefix("io.modelplane.").removesuffix(".v1")
        for e in await stream_events(nc, "SERVING")
        if e.subject == str(deployment_id)
    ]


async def test_the_migrated_schema_matches_the_models(serving_app, database_url):
    assert await schema_differences(database_url, metadata) == []


async def test_every_rule_an_endpoint_breaks_is_listed_in_one_422(serving_client, nc):
    registry = Registry(nc)

    response = await serving_client.post(
        "/endpoints",
        json=endpoint_body(
            registry,
            name="Churn_Model",
            deployment={
                "min_replicas": 3,
                "max_replicas": 2,
                "autoscaling_metrics": [{"metric": "gpu", "target": 50}],
                "resource_limits": {"gpus": 1},
                "gpu_type": "a100-80gb",
            },
        ),
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/serving-endpoint-invalid")
    assert [v["rule"] for v in problem["violations"]] == [
        "endpoint-name-dns-label",
        "max-replicas-at-least-min",
        "autoscaling-metric-supported",
        "gpu-type-enabled-for-env",
    ]


async def test_a_gpu_type_the_jobs_service_enabled_may_be_asked_for(serving_client, nc):
    changed = GpuTypeOptionsChanged(
        env="dev",
        gpu_type_id="a100-80gb",
        change="created",
        option={"id": "a100-80gb", "enabled": True, "node_label": None},
    )
    seq = await publish(nc, CloudEvent.wrap(changed, service="jobs", aggregate_id="dev/a100-80gb"))
    await wait_consumed(nc, "JOBS", "serving-jobs-gpu-type-options-changed", seq)

    response = await serving_client.post(
        "/endpoints",
        json=endpoint_body(
            Registry(nc), deployment={"resource_limits": {"gpus": 1}, "gpu_type": "A100-80GB"}
        ),
    )

    assert response.status_code == 201, response.text
    assert response.json()["deployment_spec"]["gpu_type"] == "a100-80gb"


async def test_a_name_is_unique_per_project(serving_client, nc):
    body = endpoint_body(Registry(nc))

    first = await serving_client.post("/endpoints", json=body)
    second = await serving_client.post("/endpoints", json=body)

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["type"].endswith("/duplicate-serving-endpoint")


async def test_promotions_roll_out_switch_traffic_and_roll_back(
    serving_client, serving_cluster, nc
):
    registry = Registry(nc)
    created = await serving_client.post("/endpoints", json=endpoint_body(registry))
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    assert created.json()["deployments"] == []

    # v1 promoted: a deployment, its InferenceService, then healthy and live.
    v1 = await registry.create_version(1)
    promotion = registry.transition(v1)
    seq = await publish(nc, promotion)
    first = await until(lambda: _deployment(serving_client, endpoint_id, v1, "deploying"))
    assert first, await endpoint_of(serving_client, endpoint_id)
    isvc = serving_cluster.custom_object(GROUP, PLURAL, first["framework_resource_id"], NAMESPACE)
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == f"s3://models/{registry.name}/1"
    serving_cluster.set_status(GROUP, PLURAL, NAMESPACE, first["framework_resource_id"], READY)
    assert await until(lambda: _live_is(serving_client, endpoint_id, first["id"]))

    # The same promotion delivered again starts no second rollout.
    await wait_consumed(nc, "REGISTRY", "serving-registry-model-version-transitioned", seq)
    again = await publish(nc, promotion, msg_id=str(uuid.uuid4()))
    await wait_consumed(nc, "REGISTRY", "serving-registry-model-version-transitioned", again)
    assert len((await endpoint_of(serving_client, endpoint_id))["deployments"]) == 1

    # v2 promoted and healthy: traffic moves to it, v1 is retired and its resource deleted.
    v2 = await registry.create_version(2)
    await publish(nc, registry.transition(v2))
    second = await until(lambda: _deployment(serving_client, endpoint_id, v2, "deploying"))
    serving_cluster.set_status(GROUP, PLURAL, NAMESPACE, second["framework_resource_id"], READY)
    assert await until(lambda: _live_is(serving_client, endpoint_id, second["id"]))
    assert await until(lambda: _deployment(serving_client, endpoint_id, v1, "retired"))
    assert (
        serving_cluster.custom_object(GROUP, PLURAL, first["framework_resource_id"], NAMESPACE)
        is None
    )

    # v3 cannot load: it fails, the endpoint stays on v2, and the rollback is published.
    v3 = await registry.create_version(3)
    await publish(nc, registry.transition(v3))
    third = await until(lambda: _deployment(serving_client, endpoint_id, v3, "deploying"))
    serving_cluster.set_status(
        GROUP, PLURAL, NAMESPACE, third["framework_resource_id"], FAILED_LOAD
    )
    assert await until(lambda: _deployment(serving_client, endpoint_id, v3, "retired"))
    endpoint = await endpoint_of(serving_client, endpoint_id)
    assert endpoint["live_deployment_id"] == second["id"]
    failed = next(d for d in endpoint["deployments"] if d["id"] == third["id"])
    assert "no MLmodel" in (await _events_data(nc, third["id"], "failed"))["reason"]
    rolled_back = [
        e
        for e in await stream_events(nc, "SERVING", "serving.deployment.rolled_back")
        if e.subject == endpoint_id
    ]
    assert [
        (e.data["failed_deployment_id"], e.data["serving_deployment_id"]) for e in rolled_back
    ] == [(third["id"], second["id"])]
    assert failed["framework_status"]["modelStatus"]["transitionStatus"] == "BlockedByFailedLoad"

    # Each change of state is one event, in order; polls in between published nothing.
    assert await serving_events(nc, first["id"]) == [
        "serving.deployment.requested",
        "serving.deployment.deploying",
        "serving.deployment.healthy",
        "serving.deployment.retired",
    ]
    assert await serving_events(nc, third["id"]) == [
        "serving.deployment.requested",
        "serving.deployment.deploying",
        "serving.deployment.failed",
        "serving.deployment.retired",
    ]


async def _deployment(client, endpoint_id, version_id, state) -> dict | None:
    for deployment in (await endpoint_of(client, endpoint_id))["deployments"]:
        if deployment["model_version_id"] == str(version_id) and deployment["state"] == state:
            return deployment
    return None


async def _live_is(client, endpoint_id, deployment_id) -> bool:
    endpoint = await endpoint_of(client, endpoint_id)
    live = next((d for d in endpoint["deployments"] if d["id"] == deployment_id), None)
    return endpoint["live_deployment_id"] == deployment_id and live["state"] == "healthy"


async def _events_data(nc, deployment_id, state) -> dict:
    events = [
        e
        for e in await stream_events(nc, "SERVING", f"serving.deployment.{state}")
        if e.subject == str(deployment_id)
    ]
    return events[0].data


class Model(BaseHTTPRequestHandler):
    """A model server answering the MLflow scoring protocol: doubles `x`, refuses anything else."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        split = body.get("dataframe_split", {})
        if split.get("columns") == ["x"]:
            status, answer = 200, {"predictions": [2 * row[0] for row in split["data"]]}
        else:
            status, answer = 400, {"error_code": "BAD_REQUEST", "message": "column x is required"}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def model_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Model)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_predictions_go_to_the_live_deployment(
    serving_client, serving_cluster, nc, model_server
):
    registry = Registry(nc)
    v1 = await registry.create_version(1)
    await wait_consumed(
        nc,
        "REGISTRY",
        "serving-registry-model-version-created",
        (await nc.jetstream().stream_info("REGISTRY")).state.last_seq,
    )
    created = await serving_client.post(
        "/endpoints", json=endpoint_body(registry, follow_stage=None, model_version_id=str(v1))
    )
    assert created.status_code == 201, created.text
    endpoint_id = created.json()["id"]
    request = {"dataframe_split": {"columns": ["x"], "data": [[1.5], [2]]}}

    early = await serving_client.post(f"/endpoints/{endpoint_id}/predict", json=request)
    deployment = await until(lambda: _deployment(serving_client, endpoint_id, v1, "deploying"))
    serving_cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        deployment["framework_resource_id"],
        {**READY, "address": {"url": model_server}},
    )
    assert await until(lambda: _live_is(serving_client, endpoint_id, deployment["id"]))
    answer = await serving_client.post(f"/endpoints/{endpoint_id}/predict", json=request)
    refused = await serving_client.post(
        f"/endpoints/{endpoint_id}/predict",
        json={"dataframe_split": {"columns": ["y"], "data": [[1]]}},
    )
    unknown = await serving_client.post(f"/endpoints/{uuid.uuid4()}/predict", json=request)

    assert early.status_code == 409
    assert early.json()["type"].endswith("/endpoint-not-serving")
    assert answer.status_code == 200
    assert answer.json() == {"predictions": [3.0, 4]}
    assert refused.status_code == 422
    assert refused.json()["detail"] == "column x is required"
    assert unknown.status_code == 404


async def test_an_undeployed_endpoint_takes_its_deployments_down(
    serving_client, serving_cluster, nc
):
    registry = Registry(nc)
    v1 = await registry.create_version(1)
    await publish(nc, registry.transition(v1))
    created = await serving_client.post("/endpoints", json=endpoint_body(registry))
    endpoint_id = created.json()["id"]
    deployment = await until(lambda: _deployment(serving_client, endpoint_id, v1, "deploying"))
    assert deployment, await endpoint_of(serving_client, endpoint_id)

    retired = await serving_client.delete(f"/endpoints/{endpoint_id}")

    assert retired.status_code == 200
    assert await until(lambda: _deployment(serving_client, endpoint_id, v1, "retired"))
    assert (
        serving_cluster.custom_object(GROUP, PLURAL, deployment["framework_resource_id"], NAMESPACE)
        is None
    )
    predict = await serving_client.post(f"/endpoints/{endpoint_id}/predict", json={"inputs": [1]})
    assert predict.status_code == 409
    assert datetime.fromisoformat(retired.json()["updated_at"]) <= datetime.now(UTC)


class Retiring(Model):
    """The old deployment's model server: each request it takes is still in flight when its
    InferenceService is deleted, and is cut off then (503), as when its pods terminate."""

    gone = staticmethod(lambda: False)

    def do_POST(self):
        deadline = time.monotonic() + 30
        while not self.gone() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.gone():
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_POST()


async def test_no_prediction_fails_while_a_promotion_switches_traffic(
    serving_client, serving_cluster, nc
):
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (Retiring, Model)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{server.server_address[1]}" for server in servers]
    registry = Registry(nc)
    endpoint_id = (await serving_client.post("/endpoints", json=endpoint_body(registry))).json()[
        "id"
    ]
    v1 = await registry.create_version(1)
    await publish(nc, registry.transition(v1))
    first = await until(lambda: _deployment(serving_client, endpoint_id, v1, "deploying"))
    serving_cluster.set_status(
        GROUP,
        PLURAL,
        NAMESPACE,
        first["framework_resource_id"],
        {**READY, "address": {"url": urls[0]}},
    )
    assert await until(lambda: _live_is(serving_client, endpoint_id, first["id"]))
    Retiring.gone = staticmethod(
        lambda: (
            serving_cluster.custom_object(GROUP, PLURAL, first["framework_resource_id"], NAMESPACE)
            is None
        )
    )
    answers: list[int] = []
    switching = True

    async def keep_predicting():
        request = {"dataframe_split": {"columns": ["x"], "data": [[1]]}}
        while switching:
            answers.append(
                (
                    await serving_client.post(f"/endpoints/{endpoint_id}/predict", json=request)
                ).status_code
            )

    predicting = asyncio.create_task(keep_predicting())
    try:
        v2 = await registry.create_version(2)
        await publish(nc, registry.transition(v2))
        second = await until(lambda: _deployment(serving_client, endpoint_id, v2, "deploying"))
        serving_cluster.set_status(
            GROUP,
            PLURAL,
            NAMESPACE,
            second["framework_resource_id"],
            {**READY, "address": {"url": urls[1]}},
        )
        assert await until(lambda: _deployment(serving_client, endpoint_id, v1, "retired"))
        await asyncio.sleep(0.5)
    finally:
        switching = False
        await predicting
        for server in servers:
            server.shutdown()

    assert (await endpoint_of(serving_client, endpoint_id))["live_deployment_id"] == second["id"]
    assert len(answers) > 3
    assert set(answers) == {200}


async def test_roles_by_project_decide_who_predicts_deploys_and_sees(serving_client, nc):
    registry = Registry(nc)
    viewer = credential_headers("vic", role=None, project_roles={PROJECT: Role.VIEWER})
    editor = credential_headers("eve", role=None, project_roles={PROJECT: Role.EDITOR})
    outsider = credential_headers("oz", role=None, project_roles={uuid.uuid4(): Role.ADMIN})
    body = endpoint_body(registry)

    refused = await serving_client.post("/endpoints", json=body, headers=viewer)
    created = await serving_client.post("/endpoints", json=body, headers=editor)
    endpoint_id = created.json()["id"]
    seen = await serving_client.get(f"/endpoints/{endpoint_id}", headers=viewer)
    hidden = await serving_client.get(f"/endpoints/{endpoint_id}", headers=outsider)
    listed = await serving_client.get("/endpoints", headers=viewer)
    listed_outside = await serving_client.get("/endpoints", headers=outsider)
    asked_outside = await serving_client.get(
        "/endpoints", params={"project_id": str(PROJECT)}, headers=outsider
    )
    request = {"inputs": [1]}
    predicted = await serving_client.post(
        f"/endpoints/{endpoint_id}/predict", json=request, headers=viewer
    )
    predicted_outside = await serving_client.post(
        f"/endpoints/{endpoint_id}/predict", json=request, headers=outsider
    )
    retire_refused = await serving_client.delete(f"/endpoints/{endpoint_id}", headers=viewer)
    retired = await serving_client.delete(f"/endpoints/{endpoint_id}", headers=editor)

    assert refused.status_code == 403
    assert refused.json()["required_role"] == "editor"
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == "eve"
    assert seen.status_code == 200
    assert hidden.status_code == 403
    assert endpoint_id in [e["id"] for e in listed.json()["items"]]
    assert listed_outside.json() == {"items": [], "total": 0}
    assert asked_outside.json() == {"items": [], "total": 0}
    assert predicted.status_code == 409  # allowed to ask: nothing serves yet
    assert predicted_outside.status_code == 403
    assert retire_refused.status_code == 403
    assert retired.status_code == 200
