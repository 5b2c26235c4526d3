"""Jobs that pipelines ask for with PipelineStageRequested: validated like `POST /jobs`, kept
whatever the outcome, one per stage attempt, and their events name the stage attempt."""

import asyncio
import sys
import time
import uuid

import pytest
from pydantic import ValidationError

from shared.events import CloudEvent
from shared.events.jobs import JobRequest
from shared.events.pipelines import PipelineStageRequested, StageJobCancellationRequested
from tests.bus import publish, stream_events, wait_consumed, wait_for_events
from tests.jobs.test_jobs import job_body, wait_status

CONSUMER = "jobs-pipelines-stage-requested"
QUICK = {"command": [sys.executable, "-c", "pass"], "parameters": {}}


def stage_requested(
    run_id: uuid.UUID | None = None, stage: str = "train", attempt: int = 1, **job: object
) -> CloudEvent:
    data = PipelineStageRequested(
        pipeline_run_id=run_id or uuid.uuid4(),
        stage=stage,
        attempt=attempt,
        job=JobRequest(**job_body(**job)),
    )
    return CloudEvent.wrap(
        data,
        service="pipelines",
        aggregate_id=data.pipeline_run_id,
        actor="carol@example.com",
        correlation_id=f"corr-{uuid.uuid4()}",
    )


async def jobs_of_run(client, run_id: object) -> list[dict]:
    reply = await client.get("/jobs", params={"pipeline_run_id": str(run_id)})
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


async def test_a_requested_stage_runs_as_a_job_whose_events_name_the_stage(jobs_client, nc):
    event = stage_requested(stage="train", attempt=2, **QUICK)
    await wait_consumed(nc, "PIPELINES", CONSUMER, await publish(nc, event))

    [job] = await jobs_of_run(jobs_client, event.subject)
    assert (job["pipeline_stage"], job["pipeline_attempt"]) == ("train", 2)
    assert job["created_by"] == "carol@example.com"
    job = await wait_status(jobs_client, job["id"], {"succeeded", "failed", "killed"})
    assert job["status"] == "succeeded", job
    assert job["experiment_run"]["status"] == "completed"

    events = await wait_for_events(nc, "JOBS", job["id"], count=4, timeout=15)
    assert [e.type.split(".")[-2] for e in events] == [
        "submitted",
        "validated",
        "started",
        "succeeded",
    ]
    for e in events:
        assert (
            e.data["pipeline_run_id"],
            e.data["pipeline_stage"],
            e.data["pipeline_attempt"],
        ) == (event.subject, "train", 2)
        assert e.actor == "carol@example.com"
    assert {e.correlationid for e in events[:2]} == {event.correlationid}


async def test_a_requested_stage_that_breaks_a_rule_is_kept_rejected(jobs_client, nc):
    event = stage_requested(stage="evaluate", use_gpu=True, resources={})
    await wait_consumed(nc, "PIPELINES", CONSUMER, await publish(nc, event))

    [job] = await jobs_of_run(jobs_client, event.subject)
    assert job["status"] == "rejected" and job["experiment_run"] is None
    assert [v["rule"] for v in job["violations"]] == ["gpu-type-required"]
    events = await wait_for_events(nc, "JOBS", job["id"], count=2, timeout=15)
    assert [e.type.split(".")[-2] for e in events] == ["submitted", "rejected"]
    assert events[1].data["pipeline_stage"] == "evaluate"
    assert [v["rule"] for v in events[1].data["violations"]] == ["gpu-type-required"]


async def test_each_stage_attempt_gets_one_job_however_often_it_arrives(jobs_client, nc):
    run_id = uuid.uuid4()
    first = stage_requested(run_id, attempt=1, **QUICK)
    # The same event delivered twice, and the same attempt asked for again in a new event.
    await publish(nc, first)
    await publish(nc, first, msg_id=f"{first.id}-again")
    again = stage_requested(run_id, attempt=1, **QUICK)
    await publish(nc, again)
    retry = stage_requested(run_id, attempt=2, **QUICK)
    await wait_consumed(nc, "PIPELINES", CONSUMER, await publish(nc, retry))

    jobs = await jobs_of_run(jobs_client, run_id)
    assert sorted(j["pipeline_attempt"] for j in jobs) == [1, 2]
    # Answered, not failed until dead-lettered.
    assert again.id not in {e.id for e in await stream_events(nc, "DEADLETTER")}


def test_the_job_request_of_a_stage_is_checked_like_the_http_body():
    with pytest.raises(ValidationError, match="command"):
        JobRequest(**job_body(command=[]))
    with pytest.raises(ValidationError, match="extra"):
        JobRequest(**job_body(resources={"gpu": "a100"}))


def cancellation(event: CloudEvent) -> CloudEvent:
    request = event.parse_data(PipelineStageRequested)
    data = StageJobCancellationRequested(
        pipeline_run_id=request.pipeline_run_id,
        stage=request.stage,
        attempt=request.attempt,
        requested_by="carol@example.com",
        reason="the run was cancelled by carol@example.com",
    )
    return CloudEvent.wrap(
        data, service="pipelines", aggregate_id=data.pipeline_run_id, actor="carol@example.com"
    )


async def test_a_stage_cancellation_kills_its_running_job(jobs_client, nc):
    event = stage_requested(
        stage="train", command=[sys.executable, "-c", "import time; time.sleep(120)"]
    )
    await publish(nc, event)
    deadline = time.monotonic() + 120
    while (
        not (jobs := await jobs_of_run(jobs_client, event.subject))
        or jobs[0]["status"] != "running"
    ):
        assert time.monotonic() < deadline, jobs
        await asyncio.sleep(0.1)
    await wait_consumed(
        nc,
        "PIPELINES",
        "jobs-pipelines-stage-cancellation-requested",
        await publish(nc, cancellation(event)),
        timeout=60,
    )
    [job] = await jobs_of_run(jobs_client, event.subject)
    assert job["status"] == "killed"
    events = await wait_for_events(nc, "JOBS", job["id"], count=5, timeout=15)
    assert events[-1].type.endswith("jobs.job.cancelled.v1")
    assert events[-1].data["pipeline_stage"] == "train"


async def test_a_cancellation_that_overtakes_its_request_waits_for_the_job(jobs_client, nc):
    event = stage_requested(
        stage="train", command=[sys.executable, "-c", "import time; time.sleep(120)"]
    )
    await publish(nc, cancellation(event))  # delivered again until the job exists
    await asyncio.sleep(0.5)
    await publish(nc, event)
    job = await wait_status(jobs_client, (await wait_job(jobs_client, event))["id"], {"killed"})
    assert job["pipeline_stage"] == "train"


async def wait_job(client, event: CloudEvent) -> dict:
    deadline = time.monotonic() + 30
    while not (jobs := await jobs_of_run(client, event.subject)):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    return jobs[0]
