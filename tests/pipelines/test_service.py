"""The pipelines service on real Postgres and NATS: its API, and runs driven by the answers other
services publish (here published by the test as those services would)."""

import asyncio
import time
import uuid

from sqlalchemy import select

from services.pipelines.models import metadata
from shared.events import CloudEvent
from shared.events.envelope import EventData
from shared.events.jobs import JobStarted, JobSucceeded
from shared.events.pipelines import (
    ModelVersionPromotionRequested,
    ModelVersionRegistrationRequested,
)
from shared.events.registry import RegistryStageCommandDone
from tests.bus import publish, stream_events, wait_consumed
from tests.credentials import credential_headers
from tests.migrations import schema_differences
from tests.pipelines.conftest import PROJECT
from tests.pipelines.definitions import MODEL_ID, release_pipeline, stage


async def test_the_migrated_schema_matches_the_models(pipelines_app, database_url):
    assert await schema_differences(database_url, metadata) == []


async def create(client, definition: dict, name: str | None = None) -> dict:
    reply = await client.post(
        "/pipelines",
        json={
            "name": name or f"fraud-{uuid.uuid4().hex[:8]}",
            "project_id": PROJECT,
            "definition": definition,
        },
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


# When the whole suite runs, the jobs service of tests/jobs is on the bus too and takes the stage
# requests: in env stg (Kubernetes there, on a fake cluster nothing starts on) its jobs never
# end, so the answers these tests publish are the only ones.
ENV = "stg"


async def start(client, pipeline: dict, **body) -> dict:
    body.setdefault("env", ENV)
    reply = await client.post(f"/pipelines/{pipeline['id']}/runs", json=body)
    assert reply.status_code == 201, reply.text
    return reply.json()


async def run_of(client, run: dict) -> dict:
    reply = await client.get(f"/pipelines/{run['pipeline_id']}/runs/{run['id']}")
    assert reply.status_code == 200, reply.text
    return reply.json()


async def wait_run(client, run: dict, check, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        current = await run_of(client, run)
        if check(current):
            return current
        assert time.monotonic() < deadline, current
        await asyncio.sleep(0.05)


def stages(run: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in run["stages"]}


async def commands(nc, run: dict, subject: str, count: int = 1, timeout: float = 20) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = [
            e
            for e in await stream_events(nc, "PIPELINES", f"pipelines.stage.{subject}")
            if e.subject == run["id"]
        ]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def answer(nc, data: EventData, service: str, tag: dict | None = None) -> None:
    """Publish an answer as its service would; `tag` adds the stage attempt it answers."""
    event = CloudEvent.wrap(data, service=service, aggregate_id=uuid.uuid4(), actor=service)
    if tag:
        event = event.model_copy(update={"data": {**event.data, **tag}})
    await publish(nc, event)


async def job_done(nc, run: dict, stage_name: str, attempt: int = 1, **metrics: float) -> None:
    job = {
        "job_id": uuid.uuid4(),
        "name": stage_name,
        "project_id": PROJECT,
        "pipeline_run_id": run["id"],
        "pipeline_stage": stage_name,
        "pipeline_attempt": attempt,
    }
    await answer(nc, JobStarted(**job, executor="local", run_id=f"mlflow-{stage_name}"), "jobs")
    await answer(
        nc,
        JobSucceeded(**job, run_id=f"mlflow-{stage_name}", metrics=metrics, artifact_uri=None),
        "jobs",
    )


async def registry_done(nc, run: dict, stage_name: str, **version) -> None:
    """The registry's answer that it registered (stage `none`) or moved the version."""
    command = (
        ModelVersionRegistrationRequested
        if version["stage"] == "none"
        else (ModelVersionPromotionRequested)
    )
    done = RegistryStageCommandDone(
        pipeline_run_id=run["id"],
        pipeline_stage=stage_name,
        pipeline_attempt=1,
        command=command.subject,
        **version,
    )
    await answer(nc, done, "registry")


def tag(run: dict, stage_name: str, attempt: int = 1) -> dict:
    return {"pipeline_run_id": run["id"], "pipeline_stage": stage_name, "pipeline_attempt": attempt}


async def test_an_invalid_definition_is_one_422_listing_every_problem(pipelines_client):
    reply = await pipelines_client.post(
        "/pipelines",
        json={
            "name": "broken",
            "project_id": PROJECT,
            "definition": {
                "stages": [
                    stage("a", "train", "c"),
                    stage("b", "train", "a"),
                    stage("c", "train", "b"),
                    stage("d", "sing"),
                    stage("e", "train", "ghost"),
                ]
            },
        },
    )
    assert reply.status_code == 422
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["type"].endswith("/invalid-pipeline-definition")
    assert [(p["stage"], p["rule"]) for p in body["problems"]] == [
        ("d", "kind-known"),
        ("e", "dependency-known"),
        ("a", "no-cycle"),
    ]
    assert "a -> c -> b -> a" in body["detail"]
    listed = await pipelines_client.get("/pipelines", params={"project_id": PROJECT})
    assert "broken" not in [p["name"] for p in listed.json()["items"]]


async def test_names_are_unique_in_a_project_and_definitions_are_versioned(pipelines_client):
    pipeline = await create(pipelines_client, release_pipeline(), name="unique-name")
    assert pipeline["latest_version"] == 1
    assert pipeline["definition"]["stages"][0]["name"] == "train"
    again = await pipelines_client.post(
        "/pipelines",
        json={"name": "unique-name", "project_id": PROJECT, "definition": release_pipeline()},
    )
    assert again.status_code == 409 and again.json()["type"].endswith("/pipeline-name-taken")

    second = await pipelines_client.post(
        f"/pipelines/{pipeline['id']}/definitions",
        json={"definition": {"stages": [stage("only", "train")]}},
    )
    assert second.status_code == 201 and second.json()["version"] == 2
    run = await start(
        pipelines_client, pipeline, definition_version=1, parameters={"threshold": 0.5}
    )
    assert run["definition_version"] == 1 and len(run["stages"]) == 6
    assert run["parameters"] == {"threshold": 0.5}
    latest = await start(pipelines_client, pipeline)
    assert latest["definition_version"] == 2 and [s["name"] for s in latest["stages"]] == ["only"]

    bad = await pipelines_client.post(
        f"/pipelines/{pipeline['id']}/runs",
        json={"definition_version": 1, "parameters": {"nope": 1}},
    )
    assert bad.status_code == 422 and bad.json()["type"].endswith("/invalid-run-parameters")
    missing = await pipelines_client.post(f"/pipelines/{uuid.uuid4()}/runs", json={})
    assert missing.status_code == 404


async def test_the_release_pipeline_runs_over_events_to_production(pipelines_client, nc):
    pipeline = await create(pipelines_client, release_pipeline(threshold=0.9))
    run = await start(pipelines_client, pipeline)
    assert run["status"] == "pending" and stages(run)["train"] == "requested"
    assert (run["orchestration_system"], run["workflow_id"]) == ("local", run["id"])
    [train] = await commands(nc, run, "requested")
    assert train.actor == "alice@example.com"
    assert train.data["job"]["name"] == f"{pipeline['name']}-train"

    await job_done(nc, run, "train", loss=0.1)
    await wait_run(pipelines_client, run, lambda r: stages(r)["evaluate"] == "requested")
    await job_done(nc, run, "evaluate", auc=0.95)
    current = await wait_run(pipelines_client, run, lambda r: stages(r)["register"] == "running")
    assert current["current_stage"] == "register"
    [register] = await commands(nc, run, "registration_requested")
    assert register.data["model_id"] == MODEL_ID and register.data["run_id"] == "mlflow-train"
    assert register.data["metrics"] == {"auc": 0.95}

    version_id = uuid.uuid4()
    version = {"model_id": MODEL_ID, "version_id": version_id, "version": "1"}
    await registry_done(nc, run, "register", **version, stage="none")
    [staging] = await commands(nc, run, "promotion_requested")
    assert (staging.data["version_id"], staging.data["to_stage"]) == (str(version_id), "staging")
    await registry_done(nc, run, "staging", **version, stage="staging")
    await wait_run(pipelines_client, run, lambda r: stages(r)["approve"] == "running")

    approved = await pipelines_client.post(
        f"/pipelines/{pipeline['id']}/runs/{run['id']}/stages/approve/approve",
        json={"comment": "ship it"},
        headers=credential_headers("bob@example.com"),
    )
    assert approved.status_code == 200, approved.text
    assert stages(approved.json())["approve"] == "succeeded"
    promotions = await commands(nc, run, "promotion_requested", count=2)
    production = promotions[-1]
    assert (production.data["to_stage"], production.data["approved_by"], production.actor) == (
        "production",
        "bob@example.com",
        "bob@example.com",
    )
    await registry_done(nc, run, "production", **version, stage="production")
    done = await wait_run(pipelines_client, run, lambda r: r["status"] == "succeeded")
    assert set(stages(done).values()) == {"succeeded"} and done["end_time"] is not None

    events = [
        e.nats_subject
        for e in await stream_events(nc, "PIPELINES")
        if e.subject == run["id"] and ".run." in e.nats_subject
    ]
    assert events == ["pipelines.run.pending", "pipelines.run.started", "pipelines.run.succeeded"]


async def test_the_false_branch_skips_and_the_run_succeeds(pipelines_client, nc):
    pipeline = await create(pipelines_client, release_pipeline(threshold=0.9))
    run = await start(pipelines_client, pipeline)
    await job_done(nc, run, "train")
    await wait_run(pipelines_client, run, lambda r: stages(r)["evaluate"] == "requested")
    await job_done(nc, run, "evaluate", auc=0.5)
    done = await wait_run(pipelines_client, run, lambda r: r["status"] == "succeeded")
    assert [s for s, status in stages(done).items() if status == "skipped"] == [
        "register",
        "staging",
        "approve",
        "production",
    ]
    assert await commands(nc, run, "registration_requested", timeout=0) == []


async def test_cancel_asks_the_jobs_service_to_kill_the_running_job(pipelines_client, nc):
    pipeline = await create(pipelines_client, {"stages": [stage("train", "train")]})
    run = await start(pipelines_client, pipeline)
    cancel_url = f"/pipelines/{pipeline['id']}/runs/{run['id']}/cancel"
    cancelled = await pipelines_client.post(cancel_url)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert stages(cancelled.json()) == {"train": "cancelled"}
    [kill] = await commands(nc, run, "cancellation_requested")
    assert (kill.data["stage"], kill.data["attempt"]) == ("train", 1)
    again = await pipelines_client.post(cancel_url)
    assert again.status_code == 409 and again.json()["type"].endswith("/pipeline-run-finished")
    # The job's late success changes nothing.
    await job_done(nc, run, "train")
    await asyncio.sleep(0.5)
    assert (await run_of(pipelines_client, run))["status"] == "cancelled"


async def test_a_stage_past_its_timeout_is_retried_then_fails_the_run(pipelines_client, nc):
    pipeline = await create(
        pipelines_client, {"stages": [stage("train", "train", timeout_seconds=1, max_retries=1)]}
    )
    run = await start(pipelines_client, pipeline)
    failed = await wait_run(pipelines_client, run, lambda r: r["status"] == "failed")
    assert failed["stages"][0]["attempt"] == 2
    assert failed["stages"][0]["reason"] == "timed out after 1 s"
    assert len(await commands(nc, run, "cancellation_requested", count=2)) == 2

    retried = await pipelines_client.post(f"/pipelines/{pipeline['id']}/runs/{run['id']}/retry")
    assert retried.status_code == 200 and retried.json()["status"] == "retrying"
    assert retried.json()["retry_count"] == 1
    assert retried.json()["stages"][0]["attempt"] == 3


async def test_approving_what_does_not_wait_is_a_conflict(pipelines_client):
    pipeline = await create(pipelines_client, release_pipeline())
    run = await start(pipelines_client, pipeline)
    base = f"/pipelines/{pipeline['id']}/runs/{run['id']}"
    reply = await pipelines_client.post(f"{base}/stages/approve/approve", json={})
    assert reply.status_code == 409
    assert reply.json()["type"].endswith("/stage-not-awaiting-approval")
    assert (await pipelines_client.post(f"{base}/stages/nope/approve", json={})).status_code == 404
    assert (await pipelines_client.post(f"{base}/retry")).status_code == 409
    other = await pipelines_client.get(f"/pipelines/{uuid.uuid4()}/runs/{run['id']}")
    assert other.status_code == 404


async def test_a_nul_character_or_an_out_of_range_version_is_422_not_500(pipelines_client):
    pipeline = await create(pipelines_client, release_pipeline())
    writes = [
        (
            "/pipelines",
            {
                "name": f"nul-{uuid.uuid4().hex[:6]}",
                "project_id": PROJECT,
                "description": "a\x00b",
                "definition": release_pipeline(),
            },
        ),
        (
            "/pipelines",
            {
                "name": f"nul-{uuid.uuid4().hex[:6]}",
                "project_id": PROJECT,
                "definition": {**release_pipeline(), "parameters": {"t": "\x00"}},
            },
        ),
        (
            "/pipelines",
            {"name": "nul\x00", "project_id": PROJECT, "definition": release_pipeline()},
        ),
        (
            f"/pipelines/{pipeline['id']}/definitions",
            {"definition": {**release_pipeline(), "parameters": {"t\x00": 1}}},
        ),
        (f"/pipelines/{pipeline['id']}/runs", {"definition_version": 2**31}),
        (f"/pipelines/{pipeline['id']}/runs", {"definition_version": 10**30}),
    ]
    for url, body in writes:
        reply = await pipelines_client.post(url, json=body)
        assert reply.status_code == 422, (url, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
    got = (await pipelines_client.get(f"/pipelines/{pipeline['id']}")).json()
    assert got["latest_version"] == 1
    listed = await pipelines_client.get("/pipelines", params={"project_id": PROJECT, "limit": 500})
    assert not [p for p in listed.json()["items"] if p["name"].startswith("nul")]


async def test_an_event_that_answers_no_pipeline_is_acked_without_an_inbox_row(
    pipelines_client, pipelines_app, nc, database_url
):
    job = {
        "job_id": uuid.uuid4(),
        "name": "nightly",
        "project_id": PROJECT,
        "run_id": None,
        "metrics": {},
        "artifact_uri": None,
    }
    plain = CloudEvent.wrap(JobSucceeded(**job), service="jobs", aggregate_id=uuid.uuid4())
    tagged = CloudEvent.wrap(JobSucceeded(**job), service="jobs", aggregate_id=uuid.uuid4())
    tagged = tagged.model_copy(update={"data": {**tagged.data, **tag({"id": uuid.uuid4()}, "r")}})
    await publish(nc, plain)
    seq = await publish(nc, tagged)
    await wait_consumed(nc, "JOBS", "pipelines-jobs-job-succeeded", seq)

    async with pipelines_app.state.runtime.uow() as uow:
        inbox = pipelines_app.state.runtime.inbox
        found = await uow.session.scalars(
            select(inbox.c.event_id).where(inbox.c.event_id.in_([plain.id, tagged.id]))
        )
        assert set(found) == {tagged.id}  # the answer of an unknown run is still applied once
