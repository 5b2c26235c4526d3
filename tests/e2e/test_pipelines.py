"""Pipelines through the gateway on the platform as `make up` runs it: stages run as real jobs of
the jobs service (local processes logging to the platform's MLflow server), the registry answers
the register and promote stages, serving the deploy stage (KServe, on the fake Kubernetes API
server: Ray is too heavy for this machine's e2e runs), and the local engine advances on their
events."""

import asyncio
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from deploy.launcher import Platform
from services.serving.integrations.kserve import GROUP, PLURAL
from shared.local_infra import create_database, drop_database
from tests.bus import stream_events
from tests.e2e.clients import new_project, token_for
from tests.fakes.kubernetes_api import FakeKubernetes

pytestmark = pytest.mark.e2e

QUICK = {"command": [sys.executable, "-c", "print('stage done')"]}
LOG_METRICS = str(Path(__file__).parent / "scripts" / "log_metrics.py")
FINISHED = ("succeeded", "failed", "cancelled")
CLUSTER_TOKEN = "pipelines-e2e-cluster"
NAMESPACE = "models"
READY = {
    "observedGeneration": 1,
    "conditions": [
        {"type": "Ready", "status": "True"},
        {"type": "PredictorReady", "status": "True"},
    ],
}


@pytest.fixture(scope="module")
def cluster():
    with FakeKubernetes(token=CLUSTER_TOKEN) as fake:
        yield fake


# The conftest's platform, with serving's KServe on the fake Kubernetes API server.
@pytest.fixture(scope="module")
async def platform(
    database_server_url, nats_url, tmp_path_factory, cluster
) -> AsyncIterator[Platform]:
    name = f"modelplane_e2e_{secrets.token_hex(6)}"
    database_url = await create_database(database_server_url, name)
    try:
        async with Platform(
            database_url=database_url,
            nats_url=nats_url,
            log_dir=tmp_path_factory.mktemp("platform-logs"),
            state_dir=tmp_path_factory.mktemp("platform-state"),
            tracking_workers=1,
            ready_timeout=240,
            env={
                "MODELPLANE_JOBS_RUN_AS": "",
                "MODELPLANE_KUBERNETES_HOST": cluster.url,
                "MODELPLANE_KUBERNETES_TOKEN": CLUSTER_TOKEN,
                "MODELPLANE_SERVING_FRAMEWORKS": json.dumps(["kserve"]),
                "MODELPLANE_SERVING_NAMESPACE": NAMESPACE,
                "MODELPLANE_SERVING_WATCH_SECONDS": "0.2",
            },
        ) as running:
            yield running
    finally:
        await drop_database(database_server_url, name)
        await drop_database(database_server_url, f"{name}_mlflow")


def job(**parameters) -> dict:
    """A stage's job: log_metrics.py with `--name value` for each parameter."""
    return {"command": [sys.executable, LOG_METRICS], "parameters": parameters}


def release(model_id: str) -> dict:
    """train -> evaluate -> (if auc >= threshold) register -> staging -> approve -> production."""
    return {
        "parameters": {"threshold": 0.9, "auc": None},
        "stages": [
            {"name": "train", "kind": "train", "parameters": job(loss=0.1)},
            {
                "name": "evaluate",
                "kind": "evaluate",
                "depends_on": ["train"],
                "parameters": job(auc="${params.auc}"),
            },
            {
                "name": "register",
                "kind": "register",
                "depends_on": ["evaluate"],
                "when": "auc >= params.threshold",
                "parameters": {
                    "model_id": model_id,
                    "run_id": "${train.run_id}",
                    "artifact_uri": "${train.artifact_uri}",
                    "metrics": "${evaluate.metrics}",
                },
            },
            {
                "name": "staging",
                "kind": "promote",
                "depends_on": ["register"],
                "parameters": {"version_id": "${register.version_id}", "stage": "staging"},
            },
            {"name": "approve", "kind": "approve", "depends_on": ["staging"]},
            {
                "name": "production",
                "kind": "promote",
                "depends_on": ["approve"],
                "parameters": {
                    "version_id": "${register.version_id}",
                    "stage": "production",
                    "comment": "approved by ${approve.approved_by}",
                },
            },
        ],
    }


async def wait_run(client, headers, run: dict, until=None, timeout: float = 120) -> dict:
    """The run once `until(run)` holds (by default: once it has finished)."""
    until = until or (lambda r: r["status"] in FINISHED)
    deadline = time.monotonic() + timeout
    while True:
        reply = await client.get(
            f"/api/v1/pipelines/{run['pipeline_id']}/runs/{run['id']}", headers=headers
        )
        assert reply.status_code == 200, reply.text
        current = reply.json()
        if until(current):
            return current
        assert time.monotonic() < deadline, current
        await asyncio.sleep(0.3)


def stages(run: dict) -> dict[str, str]:
    return {s["name"]: s["status"] for s in run["stages"]}


async def jobs_of(client, headers, run: dict) -> list[dict]:
    reply = await client.get("/api/v1/jobs", headers=headers, params={"pipeline_run_id": run["id"]})
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


async def new_pipeline(client, headers, project: str, definition: dict, name: str) -> dict:
    r = await client.post(
        "/api/v1/pipelines",
        headers=headers,
        json={"name": name, "project_id": project, "definition": definition},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def start(client, headers, pipeline: dict, **parameters) -> dict:
    r = await client.post(
        f"/api/v1/pipelines/{pipeline['id']}/runs",
        headers=headers,
        json={"env": "dev", "parameters": parameters},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_two_stage_pipeline_runs_its_stages_as_jobs_to_success(admin, bus):
    engineer = await token_for(admin, "pia", "editor")
    project = await new_project(admin)
    definition = {
        "stages": [
            {"name": "train", "kind": "train", "depends_on": [], "parameters": QUICK},
            {"name": "evaluate", "kind": "evaluate", "depends_on": ["train"], "parameters": QUICK},
        ]
    }
    pipeline = await new_pipeline(admin, engineer, project, definition, "nightly")

    bad = {"stages": [{"name": "a", "kind": "train", "depends_on": ["a"], "parameters": QUICK}]}
    r = await admin.post(
        "/api/v1/pipelines",
        headers=engineer,
        json={"name": "loop", "project_id": project, "definition": bad},
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"

    run = await wait_run(admin, engineer, await start(admin, engineer, pipeline))
    assert run["status"] == "succeeded", run
    assert stages(run) == {"train": "succeeded", "evaluate": "succeeded"}

    jobs = await jobs_of(admin, engineer, run)
    assert sorted(j["pipeline_stage"] for j in jobs) == ["evaluate", "train"]
    assert all(j["status"] == "succeeded" for j in jobs)

    events = [e for e in await stream_events(bus, "PIPELINES") if e.subject == run["id"]]
    assert any(e.type.endswith("pipelines.run.succeeded.v1") for e in events), [
        e.type for e in events
    ]

    r = await admin.get("/api/v1/openapi.json")
    assert "/api/v1/pipelines/{pipeline_id}/runs" in r.json()["paths"]


async def test_a_release_goes_to_production_through_an_approver_or_skips_below_threshold(
    admin, bus
):
    engineer = await token_for(admin, "rhea", "editor")
    approver = await token_for(admin, "omar", "approver")
    project = await new_project(admin)
    r = await admin.post(
        "/api/v1/registry/models", headers=engineer, json={"name": "fraud", "project_id": project}
    )
    assert r.status_code == 201, r.text
    model = r.json()
    pipeline = await new_pipeline(admin, engineer, project, release(model["id"]), "release")

    run = await start(admin, engineer, pipeline, auc=0.95)
    waiting = await wait_run(
        admin, engineer, run, lambda r: r["status"] in FINISHED or stages(r)["approve"] == "running"
    )
    assert stages(waiting)["staging"] == "succeeded", waiting
    by_stage = {s["name"]: s for s in waiting["stages"]}
    version_id = by_stage["register"]["outputs"]["version_id"]
    train_run = by_stage["train"]["outputs"]["run_id"]
    assert by_stage["evaluate"]["outputs"]["metrics"] == {"auc": 0.95}

    approve = f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}/stages/approve/approve"
    refused = await admin.post(approve, headers=engineer, json={})
    assert refused.status_code == 403, refused.text
    approved = await admin.post(approve, headers=approver, json={"comment": "ship it"})
    assert approved.status_code == 200, approved.text
    done = await wait_run(admin, engineer, run)
    assert done["status"] == "succeeded", done
    assert set(stages(done).values()) == {"succeeded"}

    # The registry's side: one version, from the train stage's MLflow run, now in production,
    # moved there by the approver.
    versions = (
        await admin.get(f"/api/v1/registry/models/{model['id']}/versions", headers=engineer)
    ).json()["items"]
    assert [(v["id"], v["stage"], v["run_id"]) for v in versions] == [
        (version_id, "production", train_run)
    ]
    assert versions[0]["metrics"] == {"auc": 0.95}
    transitions = (
        await admin.get(
            f"/api/v1/registry/models/versions/{version_id}/transitions", headers=engineer
        )
    ).json()["items"]
    assert sorted((t["to_stage"], t["transitioned_by"]) for t in transitions) == [
        ("production", "omar"),
        ("staging", "rhea"),
    ]

    # Below the threshold: register and everything after it skip; no version is made.
    low = await wait_run(admin, engineer, await start(admin, engineer, pipeline, auc=0.5))
    assert low["status"] == "succeeded", low
    assert stages(low) == {
        "train": "succeeded",
        "evaluate": "succeeded",
        "register": "skipped",
        "staging": "skipped",
        "approve": "skipped",
        "production": "skipped",
    }
    versions = (
        await admin.get(f"/api/v1/registry/models/{model['id']}/versions", headers=engineer)
    ).json()["items"]
    assert len(versions) == 1


async def test_a_stage_failing_twice_with_one_retry_fails_the_run(admin):
    engineer = await token_for(admin, "ivo", "editor")
    project = await new_project(admin)
    definition = {
        "stages": [
            {"name": "train", "kind": "train", "max_retries": 1, "parameters": job(exit=3)},
            {"name": "evaluate", "kind": "evaluate", "depends_on": ["train"], "parameters": QUICK},
        ]
    }
    pipeline = await new_pipeline(admin, engineer, project, definition, "flaky")
    run = await wait_run(admin, engineer, await start(admin, engineer, pipeline))
    assert run["status"] == "failed", run
    train, evaluate = run["stages"]
    assert (train["status"], train["attempt"], evaluate["status"]) == ("failed", 2, "pending")
    jobs = await jobs_of(admin, engineer, run)
    assert sorted((j["pipeline_attempt"], j["status"]) for j in jobs) == [
        (1, "failed"),
        (2, "failed"),
    ]


async def test_cancelling_a_run_kills_its_running_job(admin):
    engineer = await token_for(admin, "cyd", "editor")
    viewer = await token_for(admin, "vic", "viewer")
    project = await new_project(admin)
    definition = {"stages": [{"name": "train", "kind": "train", "parameters": job(sleep=600)}]}
    pipeline = await new_pipeline(admin, engineer, project, definition, "long")
    run = await start(admin, engineer, pipeline)
    await wait_run(admin, engineer, run, lambda r: stages(r)["train"] == "running")
    deadline = time.monotonic() + 60
    while not (jobs := await jobs_of(admin, engineer, run)) or jobs[0]["status"] != "running":
        assert time.monotonic() < deadline, jobs
        await asyncio.sleep(0.3)

    cancel = f"/api/v1/pipelines/{pipeline['id']}/runs/{run['id']}/cancel"
    assert (await admin.post(cancel, headers=viewer)).status_code == 403
    r = await admin.post(cancel, headers=engineer)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], stages(r.json())) == ("cancelled", {"train": "cancelled"})
    deadline = time.monotonic() + 60
    while (job_ := (await jobs_of(admin, engineer, run))[0])["status"] == "running":
        assert time.monotonic() < deadline, job_
        await asyncio.sleep(0.3)
    assert job_["status"] == "killed"  # its 600 s sleep would not have ended by now


async def test_the_pipelines_service_killed_mid_run_finishes_it_running_each_stage_once(
    admin, platform, bus
):
    engineer = await token_for(admin, "kit", "editor")
    project = await new_project(admin)
    names = ["one", "two", "three", "four"]
    definition = {
        "stages": [
            {
                "name": name,
                "kind": "train",
                "depends_on": names[i - 1 : i] if i else [],
                "parameters": job(sleep=1.5),
            }
            for i, name in enumerate(names)
        ]
    }
    pipeline = await new_pipeline(admin, engineer, project, definition, "survivor")
    run = await start(admin, engineer, pipeline)
    await wait_run(admin, engineer, run, lambda r: stages(r)["two"] == "running")

    [pipelines] = platform.replicas["pipelines"]
    restarts = platform.restarts("pipelines")
    os.kill(pipelines.process.pid, signal.SIGKILL)
    await asyncio.sleep(1)
    await platform.wait_until_ready("pipelines", timeout=120)
    assert platform.restarts("pipelines") == restarts + 1

    done = await wait_run(admin, engineer, run)
    assert done["status"] == "succeeded", done
    assert [(s["name"], s["attempt"]) for s in done["stages"]] == [(n, 1) for n in names]
    jobs = await jobs_of(admin, engineer, run)
    assert Counter(j["pipeline_stage"] for j in jobs) == dict.fromkeys(names, 1)
    requested = Counter(
        e.data["stage"]
        for e in await stream_events(bus, "PIPELINES", "pipelines.stage.requested")
        if e.subject == run["id"]
    )
    assert requested == dict.fromkeys(names, 1)


async def test_a_deploy_stage_rolls_the_registered_version_out_to_an_endpoint(admin, cluster):
    engineer = await token_for(admin, "dee", "editor")
    project = await new_project(admin)
    model = (
        await admin.post(
            "/api/v1/registry/models",
            headers=engineer,
            json={"name": "churn", "project_id": project},
        )
    ).json()
    r = await admin.post(
        "/api/v1/serving/endpoints",
        headers=engineer,
        json={
            "name": "churn",
            "project_id": project,
            "model_id": model["id"],
            "follow_stage": "production",
            "serving_framework": "kserve",
            "env": "dev",
        },
    )
    assert r.status_code == 201, r.text
    endpoint = r.json()
    definition = {
        "stages": [
            {"name": "train", "kind": "train", "parameters": job(loss=0.2)},
            {
                "name": "register",
                "kind": "register",
                "depends_on": ["train"],
                "parameters": {
                    "model_id": model["id"],
                    "run_id": "${train.run_id}",
                    "artifact_uri": "${train.artifact_uri}",
                },
            },
            {
                "name": "deploy",
                "kind": "deploy",
                "depends_on": ["register"],
                "parameters": {
                    "endpoint_id": endpoint["id"],
                    "version_id": "${register.version_id}",
                },
            },
        ]
    }
    pipeline = await new_pipeline(admin, engineer, project, definition, "ship")
    run = await start(admin, engineer, pipeline)
    waiting = await wait_run(
        admin, engineer, run, lambda r: r["status"] in FINISHED or stages(r)["deploy"] == "running"
    )
    assert stages(waiting)["deploy"] == "running", waiting
    version_id = waiting["stages"][1]["outputs"]["version_id"]

    deadline = time.monotonic() + 60
    while not (
        deployments := (
            await admin.get(f"/api/v1/serving/endpoints/{endpoint['id']}", headers=engineer)
        ).json()["deployments"]
    ):
        assert time.monotonic() < deadline, "the deploy stage made no deployment"
        await asyncio.sleep(0.3)
    [deployment] = deployments
    assert deployment["model_version_id"] == version_id
    # Serving's reconciler creates the InferenceService after the deployment's row.
    while not (
        isvc := cluster.custom_object(GROUP, PLURAL, deployment["framework_resource_id"], NAMESPACE)
    ):
        assert time.monotonic() < deadline, "no InferenceService was created"
        await asyncio.sleep(0.3)
    assert isvc["spec"]["predictor"]["model"]["storageUri"].startswith("mlflow-artifacts:/")
    cluster.set_status(GROUP, PLURAL, NAMESPACE, deployment["framework_resource_id"], READY)

    done = await wait_run(admin, engineer, run)
    assert done["status"] == "succeeded", done
    assert done["stages"][2]["outputs"] == {
        "deployment_id": deployment["id"],
        "endpoint_id": endpoint["id"],
        "version_id": version_id,
    }
