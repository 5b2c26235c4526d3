"""The service stopped mid-rollout carries on when started again, and a framework that does not
answer degrades a deployment instead of failing it. This module runs its own instances, one at a
time (no module-wide app)."""

import asyncio
import contextlib
import socket
import time
import uuid

import pytest

from services.serving.app import create_app
from services.serving.integrations.kserve import GROUP, PLURAL, KServeBackend, KServeConfig
from shared.events import CloudEvent
from shared.events.registry import ModelVersionCreated, ModelVersionTransitioned
from tests.bus import publish, stream_events, wait_consumed
from tests.credentials import known_project
from tests.serving.conftest import NAMESPACE, PROJECT, client_of, kserve_only

pytestmark = pytest.mark.timeout(300)

READY = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}


@contextlib.asynccontextmanager
async def running(settings, backends):
    app = create_app(settings, backends)
    known_project(app, PROJECT)
    async with app.router.lifespan_context(app), client_of(app) as client:
        yield client


def unreachable_kserve() -> dict:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return {
        "kserve": KServeBackend(
            KServeConfig(
                namespace=NAMESPACE, host=f"http://127.0.0.1:{port}", request_timeout_seconds=1
            )
        )
    }


async def deployment_in(client, endpoint_id, *states, timeout=60.0) -> dict | None:
    deadline = time.monotonic() + timeout
    while True:
        deployments = (await client.get(f"/endpoints/{endpoint_id}")).json()["deployments"]
        if deployments and deployments[0]["state"] in states:
            return deployments[0]
        if time.monotonic() > deadline:
            return deployments[0] if deployments else None
        await asyncio.sleep(0.1)


async def test_a_restart_mid_rollout_finishes_it_and_an_outage_only_degrades(
    serving_settings, serving_cluster, nc
):
    model_id, version_id = uuid.uuid4(), uuid.uuid4()
    created = ModelVersionCreated(
        model_id=model_id,
        model_name="fraud",
        version_id=version_id,
        version="1",
        stage="none",
        run_id=None,
        artifact_uri="s3://models/fraud/1",
        metrics={},
        created_by="alice@example.com",
    )

    async with running(serving_settings, kserve_only(serving_settings)) as client:
        seq = await publish(
            nc, CloudEvent.wrap(created, service="registry", aggregate_id=version_id)
        )
        await wait_consumed(nc, "REGISTRY", "serving-registry-model-version-created", seq)
        response = await client.post(
            "/endpoints",
            json={
                "name": f"fraud-{uuid.uuid4().hex[:6]}",
                "project_id": str(PROJECT),
                "model_id": str(model_id),
                "model_version_id": str(version_id),
                "serving_framework": "kserve",
                "env": "dev",
            },
        )
        assert response.status_code == 201, response.text
        endpoint_id = response.json()["id"]
        deploying = await deployment_in(client, endpoint_id, "deploying")
        assert deploying["state"] == "deploying"

    # Stopped; meanwhile the cluster's controller brings the model up.
    serving_cluster.set_status(GROUP, PLURAL, NAMESPACE, deploying["framework_resource_id"], READY)

    # Started with its cluster out of reach: degraded, not failed.
    async with running(serving_settings, unreachable_kserve()) as client:
        degraded = await deployment_in(client, endpoint_id, "degraded")
        await asyncio.sleep(1.0)  # more polls, and more backed-off tries, change nothing
        still = await deployment_in(client, endpoint_id, "degraded")
    assert degraded["state"] == "degraded"
    assert still["state"] == "degraded"

    # Started again with the cluster back: the rollout finishes.
    async with running(serving_settings, kserve_only(serving_settings)) as client:
        healthy = await deployment_in(client, endpoint_id, "healthy")
        endpoint = (await client.get(f"/endpoints/{endpoint_id}")).json()
    assert healthy["state"] == "healthy"
    assert endpoint["live_deployment_id"] == healthy["id"]
    subjects = [
        e.type.removeprefix("io.modelplane.").removesuffix(".v1")
        for e in await stream_events(nc, "SERVING")
        if e.subject == healthy["id"]
    ]
    assert subjects == [
        "serving.deployment.requested",
        "serving.deployment.deploying",
        "serving.deployment.degraded",
        "serving.deployment.healthy",
    ]


async def test_a_restart_mid_promotion_switches_traffic_and_retires_the_old_deployment(
    serving_settings, serving_cluster, nc
):
    model_id, v1, v2 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def created(version_id, number) -> CloudEvent:
        return CloudEvent.wrap(
            ModelVersionCreated(
                model_id=model_id,
                model_name="churn",
                version_id=version_id,
                version=number,
                stage="none",
                run_id=None,
                artifact_uri=f"s3://models/churn/{number}",
                metrics={},
                created_by="alice@example.com",
            ),
            service="registry",
            aggregate_id=version_id,
        )

    def promoted(version_id, number) -> CloudEvent:
        return CloudEvent.wrap(
            ModelVersionTransitioned(
                model_id=model_id,
                model_name="churn",
                version_id=version_id,
                version=number,
                from_stage="none",
                to_stage="production",
                comment=None,
                actor="alice@example.com",
            ),
            service="registry",
            aggregate_id=version_id,
        )

    async with running(serving_settings, kserve_only(serving_settings)) as client:
        for event in (created(v1, "1"), promoted(v1, "1")):
            seq = await publish(nc, event)
        await wait_consumed(nc, "REGISTRY", "serving-registry-model-version-transitioned", seq)
        response = await client.post(
            "/endpoints",
            json={
                "name": f"churn-{uuid.uuid4().hex[:6]}",
                "project_id": str(PROJECT),
                "model_id": str(model_id),
                "follow_stage": "production",
                "serving_framework": "kserve",
                "env": "dev",
            },
        )
        assert response.status_code == 201, response.text
        endpoint_id = response.json()["id"]
        first = await deployment_in(client, endpoint_id, "deploying")
        serving_cluster.set_status(GROUP, PLURAL, NAMESPACE, first["framework_resource_id"], READY)
        assert (await deployment_in(client, endpoint_id, "healthy"))["id"] == first["id"]

        for event in (created(v2, "2"), promoted(v2, "2")):
            seq = await publish(nc, event)
        await wait_consumed(nc, "REGISTRY", "serving-registry-model-version-transitioned", seq)
        deadline = time.monotonic() + 60
        while True:  # the rollout handed to the cluster, not yet healthy
            rolling = [
                d
                for d in (await client.get(f"/endpoints/{endpoint_id}")).json()["deployments"]
                if d["model_version_id"] == str(v2)
            ]
            if rolling and rolling[0]["state"] == "deploying" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert [d["state"] for d in rolling] == ["deploying"]

    # Stopped mid-rollout; meanwhile the new version comes up, and the promotion is seen again.
    serving_cluster.set_status(GROUP, PLURAL, NAMESPACE, rolling[0]["framework_resource_id"], READY)
    await publish(nc, promoted(v2, "2"), msg_id=f"{uuid.uuid4()}")

    async with running(serving_settings, kserve_only(serving_settings)) as client:

        async def switched():
            endpoint = (await client.get(f"/endpoints/{endpoint_id}")).json()
            states = {d["id"]: d["state"] for d in endpoint["deployments"]}
            done = (
                endpoint["live_deployment_id"] == rolling[0]["id"]
                and states[first["id"]] == "retired"
            )
            return endpoint if done else None

        deadline = time.monotonic() + 60
        while (endpoint := await switched()) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert endpoint is not None, (await client.get(f"/endpoints/{endpoint_id}")).json()
    assert [(d["model_version_id"], d["state"]) for d in endpoint["deployments"]] == [
        (str(v1), "retired"),
        (str(v2), "healthy"),
    ]
    assert (
        serving_cluster.custom_object(GROUP, PLURAL, first["framework_resource_id"], NAMESPACE)
        is None
    )
