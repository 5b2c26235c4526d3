"""Serving answers a pipeline's deploy stage: the version rolls out to the endpoint and its
deployment's events name the stage attempt; a command it will not carry out is refused."""

import uuid

import pytest

from services.serving.integrations.kserve import GROUP, PLURAL
from shared.events import CloudEvent
from shared.events.pipelines import ModelVersionDeploymentRequested
from tests.bus import publish, stream_events, wait_consumed
from tests.serving.conftest import NAMESPACE
from tests.serving.test_service import (
    READY,
    Registry,
    _deployment,
    endpoint_body,
    endpoint_of,
    until,
)

pytestmark = pytest.mark.timeout(300)
CONSUMER = "serving-pipelines-stage-deployment-requested"


def deploy(endpoint: dict, version_id, *, attempt: int = 1, project_id=None) -> CloudEvent:
    data = ModelVersionDeploymentRequested(
        pipeline_run_id=uuid.uuid4(),
        stage="deploy",
        attempt=attempt,
        requested_by="pia",
        project_id=project_id or endpoint["project_id"],
        endpoint_id=endpoint["id"],
        version_id=version_id,
    )
    return CloudEvent.wrap(
        data, service="pipelines", aggregate_id=data.pipeline_run_id, actor="pia"
    )


async def answers_of(nc, command: CloudEvent) -> list[CloudEvent]:
    return [
        e
        for e in await stream_events(nc, "SERVING")
        if e.data.get("pipeline_run_id") == command.subject
    ]


async def test_a_deploy_stage_rolls_the_version_out_once_and_its_health_answers_it(
    serving_client, serving_cluster, nc
):
    registry = Registry(nc)
    endpoint = (await serving_client.post("/endpoints", json=endpoint_body(registry))).json()
    version = await registry.create_version(1)
    await until(lambda: _registry_events_seen(nc))
    command = deploy(endpoint, version)
    await publish(nc, command)
    await publish(nc, command, msg_id=f"{command.id}-again")  # delivered twice
    deploying = await until(
        lambda: _deployment(serving_client, endpoint["id"], version, "deploying")
    )
    assert deploying, await endpoint_of(serving_client, endpoint["id"])
    serving_cluster.set_status(GROUP, PLURAL, NAMESPACE, deploying["framework_resource_id"], READY)
    healthy = await until(lambda: _with_type(nc, command, "deployment.healthy"))
    assert (healthy.data["pipeline_stage"], healthy.data["pipeline_attempt"]) == ("deploy", 1)
    assert healthy.data["model_version_id"] == str(version)
    assert len((await endpoint_of(serving_client, endpoint["id"]))["deployments"]) == 1

    # Asked again (a retried stage): the healthy deployment answers at once, none is added.
    again = deploy(endpoint, version, attempt=2)
    await publish(nc, again)
    answered = await until(lambda: _with_type(nc, again, "deployment.healthy"))
    assert answered.data["deployment_id"] == deploying["id"]
    assert len((await endpoint_of(serving_client, endpoint["id"]))["deployments"]) == 1


async def test_a_deploy_stage_of_another_project_or_model_is_refused(serving_client, nc):
    registry = Registry(nc)
    endpoint = (await serving_client.post("/endpoints", json=endpoint_body(registry))).json()
    version = await registry.create_version(1)
    await until(lambda: _registry_events_seen(nc))
    other = Registry(nc)
    other_version = await other.create_version(1)
    await until(lambda: _registry_events_seen(nc))
    elsewhere = deploy(endpoint, version, project_id=str(uuid.uuid4()))
    unknown = deploy(endpoint, other_version)
    for command in (elsewhere, unknown):
        await wait_consumed(nc, "PIPELINES", CONSUMER, await publish(nc, command))
    problems = [
        (await until(lambda c=c: _with_type(nc, c, "stage_command.refused"))).data["problem"]
        for c in (elsewhere, unknown)
    ]
    assert problems == ["outside-the-runs-project", "version-not-deployable"]
    assert (await endpoint_of(serving_client, endpoint["id"]))["deployments"] == []


async def _registry_events_seen(nc) -> bool:
    """Serving has taken in every version the registry announced so far."""
    info = await nc.jetstream().consumer_info("REGISTRY", "serving-registry-model-version-created")
    stream = await nc.jetstream().stream_info("REGISTRY")
    return info.ack_floor.stream_seq >= stream.state.last_seq


async def _with_type(nc, command: CloudEvent, suffix: str) -> CloudEvent | None:
    found = [e for e in await answers_of(nc, command) if e.type.endswith(f"{suffix}.v1")]
    return found[0] if found else None
