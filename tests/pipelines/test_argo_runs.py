"""Runs of an env whose pipelines run on Argo Workflows: submitted to the fake Kubernetes API
through the real client, and read back into the run's rows and events as the workflow moves."""

import asyncio
import time
import uuid

import httpx
import pytest
from kubernetes import client as k8s

from tests.bus import stream_events
from tests.credentials import GatewayCredential, credential_headers
from tests.fakes.kubernetes_api import FakeKubernetes
from tests.pipelines.conftest import ACTOR, PROJECT, create_app
from tests.pipelines.definitions import release_pipeline
from tests.pipelines.test_service import commands, stages, wait_run

GROUP, VERSION, PLURAL, NAMESPACE = "argoproj.io", "v1alpha1", "workflows", "ml-pipelines"


@pytest.fixture(scope="module")
def cluster():
    with FakeKubernetes() as fake:
        yield fake


@pytest.fixture(scope="module")
async def argo_client(database_url, nats_url, cluster):
    from services.pipelines.settings import PipelinesSettings

    settings = PipelinesSettings(
        database_url=database_url,
        nats_url=nats_url,
        relay_poll_seconds=0.2,
        pipelines_orchestration={"stg": "argo_workflows"},
        pipelines_argo_poll_seconds=0.1,
        argo_namespace=NAMESPACE,
        kubernetes_host=cluster.url,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://pipelines/api/v1",
            auth=GatewayCredential(ACTOR),
            timeout=30,
        ) as client,
    ):
        yield client


async def start_on_argo(client) -> tuple[dict, dict]:
    pipeline = (
        await client.post(
            "/pipelines",
            json={
                "name": f"Argo Fraud {uuid.uuid4().hex[:6]}",
                "project_id": PROJECT,
                "definition": release_pipeline(),
            },
        )
    ).json()
    reply = await client.post(f"/pipelines/{pipeline['id']}/runs", json={"env": "stg"})
    assert reply.status_code == 201, reply.text
    return pipeline, reply.json()


def node(name: str, phase: str, type_: str = "Pod", **fields) -> dict:
    return {
        "id": f"n-{name}",
        "name": f"wf.{name}",
        "displayName": name,
        "type": type_,
        "phase": phase,
        "startedAt": "2026-12-07T03:00:00Z",
        **fields,
    }


def set_status(cluster, run: dict, status: dict) -> None:
    cluster.set_status(GROUP, PLURAL, NAMESPACE, run["workflow_id"], status)


async def test_a_run_is_submitted_and_follows_its_workflow(argo_client, cluster, nc):
    _, run = await start_on_argo(argo_client)
    assert (run["orchestration_system"], run["workflow_namespace"]) == ("argo_workflows", NAMESPACE)
    assert run["workflow_id"].startswith("argo-fraud-") and run["status"] == "pending"
    workflow = cluster.custom_object(GROUP, PLURAL, run["workflow_id"], NAMESPACE)
    assert workflow["spec"]["entrypoint"] == "pipeline"
    assert await commands(nc, run, "requested", timeout=0) == []  # no local job asked for

    set_status(cluster, run, {"phase": "Running", "nodes": {"n-train": node("train", "Running")}})
    current = await wait_run(argo_client, run, lambda r: r["status"] == "running")
    assert stages(current)["train"] == "running" and current["current_stage"] == "train"

    set_status(
        cluster,
        run,
        {
            "phase": "Succeeded",
            "finishedAt": "2026-12-07T03:10:00Z",
            "nodes": {
                "n-train": node("train", "Succeeded", "Retry", children=["n-t0", "n-t1"]),
                "n-t0": node("train(0)", "Failed"),
                "n-t1": node("train(1)", "Succeeded"),
                "n-evaluate": node(
                    "evaluate",
                    "Succeeded",
                    outputs={"parameters": [{"name": "metric-auc", "value": "0.7"}]},
                ),
                "n-register": node(
                    "register", "Skipped", "Skipped", message="when evaluated false"
                ),
                "n-staging": node("staging", "Omitted", "Skipped"),
            },
        },
    )
    done = await wait_run(argo_client, run, lambda r: r["status"] == "succeeded")
    assert stages(done) == {
        "train": "succeeded",
        "evaluate": "succeeded",
        "register": "skipped",
        "staging": "skipped",
        "approve": "pending",
        "production": "pending",
    }
    by_name = {s["name"]: s for s in done["stages"]}
    assert by_name["train"]["attempt"] == 2
    assert by_name["evaluate"]["outputs"] == {"metrics": {"auc": 0.7}}

    deadline = time.monotonic() + 20
    while True:
        events = [
            e.nats_subject for e in await stream_events(nc, "PIPELINES") if e.subject == run["id"]
        ]
        if "pipelines.run.succeeded" in events or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert [e for e in events if ".run." in e] == [
        "pipelines.run.pending",
        "pipelines.run.started",
        "pipelines.run.succeeded",
    ]
    assert events.count("pipelines.stage.skipped") == 2


async def test_approval_resumes_the_suspended_node_and_cancel_terminates(argo_client, cluster):
    pipeline, run = await start_on_argo(argo_client)
    base = f"/pipelines/{pipeline['id']}/runs/{run['id']}"
    early = await argo_client.post(f"{base}/stages/approve/approve", json={})
    assert early.status_code == 409

    set_status(
        cluster,
        run,
        {"phase": "Running", "nodes": {"n-approve": node("approve", "Running", "Suspend")}},
    )
    await wait_run(argo_client, run, lambda r: stages(r)["approve"] == "running")
    approved = await argo_client.post(
        f"{base}/stages/approve/approve", json={}, headers=credential_headers("bob@example.com")
    )
    assert approved.status_code == 200, approved.text
    assert stages(approved.json())["approve"] == "succeeded"
    stored = cluster.custom_object(GROUP, PLURAL, run["workflow_id"], NAMESPACE)
    assert stored["status"]["nodes"]["n-approve"]["phase"] == "Succeeded"
    assert stored["status"]["nodes"]["n-approve"]["message"] == "approved by bob@example.com"

    retry = await argo_client.post(f"{base}/retry")
    assert retry.status_code == 409
    cancelled = await argo_client.post(f"{base}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    stored = cluster.custom_object(GROUP, PLURAL, run["workflow_id"], NAMESPACE)
    assert stored["spec"]["shutdown"] == "Terminate"


async def test_a_run_whose_workflow_is_missing_is_submitted_again(argo_client, cluster):
    _, run = await start_on_argo(argo_client)
    with k8s.ApiClient(k8s.Configuration(host=cluster.url)) as api_client:
        k8s.CustomObjectsApi(api_client).delete_namespaced_custom_object(
            GROUP, VERSION, NAMESPACE, PLURAL, run["workflow_id"]
        )
    deadline = time.monotonic() + 20
    while cluster.custom_object(GROUP, PLURAL, run["workflow_id"], NAMESPACE) is None:
        assert time.monotonic() < deadline, "the workflow was not submitted again"
        await asyncio.sleep(0.1)


async def test_an_envs_integration_config_chooses_its_orchestrator(argo_client, nc):
    from datetime import UTC, datetime, timedelta

    from shared.events import CloudEvent
    from shared.events.gateway import IntegrationConfigChanged
    from tests.bus import publish, wait_consumed

    async def configure(backend: str, changed_at: datetime) -> None:
        change = IntegrationConfigChanged(
            env="prod",
            concern="pipeline_orchestration",
            backend=backend,
            settings={},
            changed_by="admin@example.com",
            changed_at=changed_at,
        )
        event = CloudEvent.wrap(change, service="gateway", aggregate_id="prod/pipelines")
        await wait_consumed(
            nc, "GATEWAY", "pipelines-gateway-integration-config-changed", await publish(nc, event)
        )

    now = datetime.now(UTC)
    await configure("argo_workflows", now)
    await configure("local", now - timedelta(minutes=1))  # older: arrived late, ignored
    pipeline = (
        await argo_client.post(
            "/pipelines",
            json={
                "name": f"prod-{uuid.uuid4().hex[:6]}",
                "project_id": PROJECT,
                "definition": release_pipeline(),
            },
        )
    ).json()
    run = await argo_client.post(f"/pipelines/{pipeline['id']}/runs", json={"env": "prod"})
    assert run.json()["orchestration_system"] == "argo_workflows"

    await configure("local", now + timedelta(minutes=1))
    run = await argo_client.post(f"/pipelines/{pipeline['id']}/runs", json={"env": "prod"})
    assert run.json()["orchestration_system"] == "local"
