"""Training jobs end to end inside the jobs service: validation, a real local run tracked in a
real MLflow store, failure, cancellation, and a restart that does not lose a job."""

import asyncio
import sys
import time
import uuid
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.bus import wait_for_events
from tests.credentials import credential_headers, known_project
from tests.jobs.conftest import JOBS_PROJECT

SCRIPTS = Path(__file__).parent / "scripts"


def job_body(**overrides) -> dict:
    body = {
        "name": f"train-{uuid.uuid4().hex[:6]}",
        "project_id": str(JOBS_PROJECT),
        "env": "dev",
        "job_type": "training",
        "command": [sys.executable, str(SCRIPTS / "train.py")],
        "parameters": {"epochs": 2},
        "use_gpu": False,
        "resources": {"cpu": "1", "memory": "1Gi"},
        "register_model": None,
    }
    body.update(overrides)
    return body


# A job imports MLflow (25 s of wall clock on a loaded two-core machine) before it ends.
async def wait_status(client, job_id: str, statuses: set[str], timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = (await client.get(f"/jobs/{job_id}")).json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, f"job still {job['status']}"
        await asyncio.sleep(0.1)


async def test_each_violated_rule_is_named_and_the_rejection_published(jobs_client, nc):
    r = await jobs_client.post(
        "/jobs", json=job_body(use_gpu=False, resources={"gpu_type": "a100", "gpus": 2})
    )
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"].endswith("/job-rejected")
    assert [v["rule"] for v in problem["violations"]] == [
        "gpu-type-without-gpu",
        "gpus-without-gpu",
    ]
    events = await wait_for_events(nc, "JOBS", problem["job_id"], count=2, timeout=15)
    assert [e.type for e in events] == [
        "io.modelplane.jobs.job.submitted.v1",
        "io.modelplane.jobs.job.rejected.v1",
    ]
    assert events[0].data["gpu_type"] == "a100" and events[0].data["pipeline_run_id"] is None
    assert [v["rule"] for v in events[1].data["violations"]] == [
        "gpu-type-without-gpu",
        "gpus-without-gpu",
    ]
    stored = (await jobs_client.get(f"/jobs/{problem['job_id']}")).json()
    assert stored["status"] == "rejected"


async def test_gpu_jobs_need_an_enabled_gpu_type_of_their_env(jobs_client):
    gpu_id = f"t4-{uuid.uuid4().hex[:6]}"
    await jobs_client.post("/gpu-types", json={"id": gpu_id, "label": "T4", "env": "prod"})
    await jobs_client.post(
        "/gpu-types", json={"id": gpu_id, "label": "T4", "env": "stg", "enabled": False}
    )
    missing = await jobs_client.post("/jobs", json=job_body(env="prod", use_gpu=True, resources={}))
    assert [v["rule"] for v in missing.json()["violations"]] == ["gpu-type-required"]
    disabled = await jobs_client.post(
        "/jobs", json=job_body(env="stg", use_gpu=True, resources={"gpu_type": gpu_id})
    )
    assert [v["rule"] for v in disabled.json()["violations"]] == ["gpu-type-enabled-for-env"]
    other_env = await jobs_client.post(
        "/jobs", json=job_body(env="dev", use_gpu=True, resources={"gpu_type": gpu_id})
    )
    assert [v["rule"] for v in other_env.json()["violations"]] == ["gpu-type-enabled-for-env"]


async def test_a_local_training_job_succeeds_with_its_mlflow_run(
    jobs_client, jobs_settings, jobs_app, nc
):
    model_id = str(uuid.uuid4())
    r = await jobs_client.post(
        "/jobs",
        json=job_body(register_model={"model_id": model_id}, project_id=known_project(jobs_app)),
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "running"
    run = job["experiment_run"]
    assert run["tracking_system"] == "mlflow" and run["status"] == "running"

    job = await wait_status(jobs_client, job["id"], {"succeeded", "failed", "killed"})
    assert job["status"] == "succeeded", job
    run = job["experiment_run"]
    assert run["status"] == "completed" and run["end_time"] is not None
    assert run["metrics"] == {"accuracy": 0.7}
    assert run["parameters"] == {"epochs": "2"}
    assert run["artifacts"] == ["model.bin"]
    assert run["artifact_uris"][0].startswith("mlflow-artifacts:/")  # served by the server

    mlflow_run = MlflowClient(jobs_settings.tracking_uri()).get_run(run["tracking_run_id"])
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.metrics == {"accuracy": 0.7}
    artifacts = MlflowClient(jobs_settings.tracking_uri()).list_artifacts(run["tracking_run_id"])
    assert [a.path for a in artifacts] == ["model.bin"]

    logs = await jobs_client.get(f"/jobs/{job['id']}/logs")
    assert logs.status_code == 200 and "trained 2 epochs" in logs.text

    events = await wait_for_events(nc, "JOBS", job["id"], count=4, timeout=15)
    assert [e.type.split(".")[-2] for e in events] == [
        "submitted",
        "validated",
        "started",
        "succeeded",
    ]
    succeeded = events[3].data
    assert succeeded["run_id"] == run["tracking_run_id"]
    assert succeeded["metrics"] == {"accuracy": 0.7}
    assert succeeded["artifact_uri"] == run["artifact_uris"][0]
    assert succeeded["register_model"] == {"model_id": model_id}

    run_events = await wait_for_events(nc, "JOBS", run["id"], count=2, timeout=15)
    assert [e.type for e in run_events] == ["io.modelplane.jobs.experiment_run.updated.v1"] * 2
    created, ended = (e.data for e in run_events)
    assert (created["status"], created["metrics"], created["end_time"]) == ("running", {}, None)
    assert created["tracking_run_id"] == run["tracking_run_id"]
    assert created["job_id"] == job["id"]
    assert (ended["status"], ended["metrics"]) == ("completed", {"accuracy": 0.7})
    assert ended["artifact_uris"] == run["artifact_uris"] and ended["end_time"] is not None

    listed = (await jobs_client.get("/jobs", params={"project_id": job["project_id"]})).json()
    assert [j["id"] for j in listed["items"]] == [job["id"]] and listed["total"] == 1


async def test_a_failing_script_ends_failed(jobs_client, nc):
    r = await jobs_client.post("/jobs", json=job_body(parameters={"epochs": 1, "fail": True}))
    assert r.status_code == 201, r.text
    job = await wait_status(jobs_client, r.json()["id"], {"succeeded", "failed", "killed"})
    assert job["status"] == "failed" and job["exit_code"] == 1
    assert job["experiment_run"]["status"] == "failed"
    assert job["experiment_run"]["metrics"] == {"accuracy": 0.5}
    events = await wait_for_events(nc, "JOBS", job["id"], count=4, timeout=15)
    assert events[3].type == "io.modelplane.jobs.job.failed.v1"
    run_events = await wait_for_events(nc, "JOBS", job["experiment_run"]["id"], count=2)
    assert [e.data["status"] for e in run_events] == ["running", "failed"]
    assert run_events[1].data["metrics"] == {"accuracy": 0.5}


async def test_a_cancelled_job_ends_killed_and_cannot_be_cancelled_again(jobs_client, nc):
    r = await jobs_client.post(
        "/jobs", json=job_body(command=[sys.executable, str(SCRIPTS / "sleep.py")], parameters={})
    )
    job_id = r.json()["id"]
    r = await jobs_client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "killed"
    assert r.json()["experiment_run"]["status"] == "killed"
    again = await jobs_client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 409
    assert again.json()["type"].endswith("/job-already-finished")
    events = await wait_for_events(nc, "JOBS", job_id, count=4, timeout=15)
    assert events[3].type == "io.modelplane.jobs.job.cancelled.v1"
    run_events = await wait_for_events(nc, "JOBS", r.json()["experiment_run"]["id"], count=2)
    assert [e.data["status"] for e in run_events] == ["running", "killed"]


async def test_a_job_that_ends_while_the_service_is_down_is_settled_after_restart(
    jobs_client, jobs_settings
):
    from services.jobs.app import create_app

    # A second service instance, stopped while its job runs; the job ends meanwhile.
    second = create_app(jobs_settings)
    known_project(second, JOBS_PROJECT)
    import httpx

    async with (
        second.router.lifespan_context(second),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=second),
            base_url="http://jobs/api/v1",
            headers=credential_headers("bob"),
        ) as c,
    ):
        r = await c.post("/jobs", json=job_body(parameters={"epochs": 1}))
        assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    # The session-wide instance (still up) plays the restarted service: its watcher resumes.
    job = await wait_status(jobs_client, job_id, {"succeeded", "failed", "killed"})
    assert job["status"] == "succeeded"
    assert job["experiment_run"]["metrics"] == {"accuracy": 0.5}


async def test_unknown_jobs_are_404(jobs_client):
    r = await jobs_client.get(f"/jobs/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["type"].endswith("/job-not-found")
    assert (await jobs_client.post(f"/jobs/{uuid.uuid4()}/cancel")).status_code == 404
