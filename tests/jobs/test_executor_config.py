"""Each env's executor is configuration: the gateway's IntegrationConfig (as its
IntegrationConfigChanged events say), else the service's default for the env. A job stays on the
executor it started on. Kubernetes here is the fake API server of the session (`jobs_cluster`)."""

import sys
import uuid
from datetime import UTC, datetime, timedelta

from services.jobs.settings import JobsSettings
from shared.events import CloudEvent
from shared.events.gateway import IntegrationConfigChanged
from tests.bus import publish, wait_consumed
from tests.jobs.test_jobs import SCRIPTS, job_body, wait_status

CONSUMER = "jobs-gateway-integration-config-changed"
FINISHED = {"succeeded", "failed", "killed"}


async def configure(
    nc, env: str, backend: str, settings: dict | None = None, *, changed_at: datetime | None = None
) -> None:
    """What the gateway publishes on `PUT /api/v1/integrations/{env}/training_execution`."""
    change = IntegrationConfigChanged(
        env=env,
        concern="training_execution",
        backend=backend,
        settings=settings or {},
        changed_by="admin",
        changed_at=changed_at or datetime.now(UTC),
    )
    event = CloudEvent.wrap(change, service="gateway", aggregate_id=f"{env}/training_execution")
    await wait_consumed(nc, "GATEWAY", CONSUMER, await publish(nc, event))


async def run_job(client, env: str) -> dict:
    """A job that runs until it is cancelled, once it has started."""
    reply = await client.post(
        "/jobs",
        json=job_body(env=env, command=[sys.executable, str(SCRIPTS / "sleep.py")], parameters={}),
    )
    assert reply.status_code == 201, reply.text
    return await wait_status(client, reply.json()["id"], {"running", *FINISHED})


def kubernetes_jobs(cluster, namespace: str, job: dict) -> list:
    return [
        request
        for request in cluster.received("POST", f"/namespaces/{namespace}/jobs")
        if request.body["metadata"]["name"] == f"modelplane-{job['id']}"
    ]


async def test_prod_jobs_run_where_its_config_says_and_stay_there_when_it_changes(
    jobs_client, jobs_cluster, nc
):
    namespace = f"ml-prod-{uuid.uuid4().hex[:6]}"
    await configure(nc, "prod", "kubernetes", {"namespace": namespace})

    on_kubernetes = await run_job(jobs_client, "prod")
    assert (on_kubernetes["status"], on_kubernetes["executor"]) == ("running", "kubernetes")
    assert len(kubernetes_jobs(jobs_cluster, namespace, on_kubernetes)) == 1
    dev = await run_job(jobs_client, "dev")
    assert dev["executor"] == "local"

    await configure(nc, "prod", "local")
    local = await run_job(jobs_client, "prod")
    assert local["executor"] == "local"
    assert kubernetes_jobs(jobs_cluster, namespace, local) == []

    # The job started on Kubernetes is still followed there, to its end.
    jobs_cluster.finish_job(f"modelplane-{on_kubernetes['id']}", namespace, succeeded=True)
    finished = await wait_status(jobs_client, on_kubernetes["id"], FINISHED)
    assert (finished["status"], finished["executor"]) == ("succeeded", "kubernetes")
    assert finished["experiment_run"]["status"] == "completed"
    for job in (dev, local):
        assert (await jobs_client.post(f"/jobs/{job['id']}/cancel")).json()["status"] == "killed"


async def test_a_change_that_arrives_after_a_newer_one_is_ignored(jobs_client, jobs_cluster, nc):
    namespace = f"ml-prod-{uuid.uuid4().hex[:6]}"
    newest = datetime.now(UTC)
    await configure(nc, "prod", "kubernetes", {"namespace": namespace}, changed_at=newest)
    await configure(nc, "prod", "local", changed_at=newest - timedelta(seconds=1))

    job = await run_job(jobs_client, "prod")
    assert job["executor"] == "kubernetes"
    assert len(kubernetes_jobs(jobs_cluster, namespace, job)) == 1
    cancelled = (await jobs_client.post(f"/jobs/{job['id']}/cancel")).json()
    assert cancelled["status"] == "killed"
    assert jobs_cluster.received("DELETE", f"/namespaces/{namespace}/jobs/modelplane-{job['id']}")


async def test_an_env_without_config_uses_the_services_default_for_it(
    jobs_client, jobs_cluster, jobs_settings
):
    stg = await run_job(jobs_client, "stg")  # the session's default for stg: Kubernetes
    assert stg["executor"] == "kubernetes"
    assert len(kubernetes_jobs(jobs_cluster, jobs_settings.kubernetes_namespace, stg)) == 1
    assert (await jobs_client.post(f"/jobs/{stg['id']}/cancel")).json()["status"] == "killed"


def test_the_default_executors_are_read_per_env_from_the_environment(monkeypatch):
    monkeypatch.setenv("MODELPLANE_JOBS_EXECUTORS", '{"prod": "kubernetes"}')
    settings = JobsSettings()
    assert [settings.default_executor(env) for env in ("dev", "stg", "prod")] == [
        "local",
        "local",
        "kubernetes",
    ]
