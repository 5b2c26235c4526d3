"""The registry keeps, from the serving service's deployment events, where each version serves,
and shows it with the model: once per event, a late older event changing nothing."""

import uuid
from datetime import UTC, datetime, timedelta

from shared.events import CloudEvent
from shared.events.serving import (
    DeploymentDeploying,
    DeploymentHealthy,
    DeploymentRequested,
    DeploymentRetired,
    DeploymentRolledBack,
)
from tests.bus import publish, wait_consumed

CONSUMER = "registry-serving-deployment-changed"


def deployment_event(
    model: dict,
    version: dict,
    event_type,
    *,
    deployment_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    state: str,
    at: datetime,
    **extra,
) -> CloudEvent:
    data = event_type(
        deployment_id=deployment_id,
        endpoint_id=endpoint_id,
        endpoint_name="churn-api",
        project_id=model["project_id"],
        model_id=model["id"],
        model_version_id=version["id"],
        version=version["version"],
        env="dev",
        serving_framework="ray_serve",
        framework_resource_id=f"churn-api-{deployment_id.hex[:8]}",
        framework_namespace="default",
        state=state,
        **extra,
    )
    event = CloudEvent.wrap(data, service="serving", aggregate_id=deployment_id)
    return event.model_copy(update={"time": at})


async def test_the_model_shows_where_each_version_serves(client, nc, model):
    v1, v2 = [
        (await client.post(f"/models/{model['id']}/versions", json={})).json() for _ in range(2)
    ]
    endpoint_id, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    t0 = datetime.now(UTC)
    requested = {
        "replica_count": 1,
        "min_replicas": 1,
        "max_replicas": 1,
        "autoscaling_metrics": [],
        "resource_requests": {},
        "resource_limits": {},
        "gpu_type": None,
    }
    healthy = deployment_event(
        model,
        v1,
        DeploymentHealthy,
        deployment_id=first,
        endpoint_id=endpoint_id,
        state="healthy",
        at=t0 + timedelta(seconds=2),
        live=True,
    )
    events = [
        deployment_event(
            model,
            v1,
            DeploymentRequested,
            deployment_id=first,
            endpoint_id=endpoint_id,
            state="created",
            at=t0,
            **requested,
        ),
        healthy,
        # Delivered late: older than the healthy one kept, it changes nothing.
        deployment_event(
            model,
            v1,
            DeploymentDeploying,
            deployment_id=first,
            endpoint_id=endpoint_id,
            state="deploying",
            at=t0 + timedelta(seconds=1),
        ),
        deployment_event(
            model,
            v2,
            DeploymentRequested,
            deployment_id=second,
            endpoint_id=endpoint_id,
            state="created",
            at=t0 + timedelta(seconds=3),
            **requested,
        ),
        CloudEvent.wrap(
            DeploymentRolledBack(
                endpoint_id=endpoint_id,
                endpoint_name="churn-api",
                project_id=model["project_id"],
                model_id=model["id"],
                failed_deployment_id=second,
                failed_model_version_id=v2["id"],
                serving_deployment_id=first,
                serving_model_version_id=v1["id"],
                reason="no MLmodel",
            ),
            service="serving",
            aggregate_id=endpoint_id,
        ),
    ]
    for event in events:
        seq = await publish(nc, event)
    # The healthy event again under another message id: a second delivery of one event.
    seq = await publish(nc, healthy, msg_id=f"{healthy.id}-again")
    await wait_consumed(nc, "SERVING", CONSUMER, seq)

    detail = (await client.get(f"/models/{model['id']}")).json()
    serving = {v["version"]: v["serving"] for v in detail["versions"]}
    assert [
        (s["deployment_id"], s["endpoint_id"], s["endpoint_name"], s["state"]) for s in serving["1"]
    ] == [(str(first), str(endpoint_id), "churn-api", "healthy")]
    assert [(s["deployment_id"], s["state"]) for s in serving["2"]] == [(str(second), "created")]

    retired = deployment_event(
        model,
        v1,
        DeploymentRetired,
        deployment_id=first,
        endpoint_id=endpoint_id,
        state="retired",
        at=t0 + timedelta(seconds=4),
        reason="replaced",
    )
    await wait_consumed(nc, "SERVING", CONSUMER, await publish(nc, retired))

    detail = (await client.get(f"/models/{model['id']}")).json()
    serving = {v["version"]: v["serving"] for v in detail["versions"]}
    assert serving["1"] == []
    assert [s["state"] for s in serving["2"]] == ["created"]
