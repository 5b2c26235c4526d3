"""A training job through the gateway: validated against the env's GPU types, run locally in
an environment that has only the MLflow client, tracked by the platform's MLflow tracking
server, and its model registered by the registry from the JobSucceeded event."""

import asyncio
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from deploy.launcher import Platform
from shared.local_infra import create_database, drop_database
from tests.e2e.clients import new_project, token_for

# The platform and an MLflow server start first: minutes on a loaded two-core machine.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]

ROOT = Path(__file__).parent.parent.parent
TRAIN = ROOT / "tests" / "jobs" / "scripts" / "train.py"
UV = Path(sys.executable).parent / "uv"


def pinned(package: str) -> str:
    """`package==version` as requirements.txt pins it."""
    [line] = [
        line
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if re.match(rf"{re.escape(package)}==", line)
    ]
    return line.strip()


@pytest.fixture(scope="module")
def open_dir() -> AsyncIterator[Path]:
    """A folder every user can reach: a root platform runs jobs as an unprivileged user, who
    must reach the job directories and the job's interpreter."""
    path = Path(tempfile.mkdtemp(prefix="modelplane-e2e-jobs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_client_only_env(open_dir: Path) -> Path:
    """A virtualenv with the MLflow client alone (mlflow-skinny: no SQLAlchemy, no server),
    on an interpreter any user may run."""
    venv = open_dir / "venv"
    interpreter = "/usr/bin/python3" if os.geteuid() == 0 else sys.executable
    subprocess.run([UV, "venv", "-q", "--python", interpreter, venv], check=True)
    subprocess.run(
        [UV, "pip", "install", "-q", "--python", venv / "bin" / "python", pinned("mlflow-skinny")],
        check=True,
    )
    probe = subprocess.run(
        [venv / "bin" / "python", "-c", "import sqlalchemy"], capture_output=True, check=False
    )
    assert probe.returncode != 0, "the job's environment must have the MLflow client only"
    return venv


# The conftest's platform, but with its state (the jobs' directories) where every user can
# reach it: as root, the platform runs jobs as an unprivileged user.
@pytest.fixture(scope="module")
async def platform(database_server_url, nats_url, open_dir) -> AsyncIterator[Platform]:
    name = f"modelplane_e2e_{secrets.token_hex(6)}"
    database_url = await create_database(database_server_url, name)
    try:
        async with Platform(
            database_url=database_url,
            nats_url=nats_url,
            log_dir=open_dir / "logs",
            state_dir=open_dir / "state",
            tracking_workers=1,
            ready_timeout=240,
        ) as running:
            yield running
    finally:
        await drop_database(database_server_url, name)
        await drop_database(database_server_url, f"{name}_mlflow")


async def wait_finished(client: httpx.AsyncClient, job: dict, headers: dict) -> dict:
    deadline = time.monotonic() + 90
    while job["status"] not in ("succeeded", "failed", "killed"):
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.2)
        job = (await client.get(f"/api/v1/jobs/{job['id']}", headers=headers)).json()
    return job


async def test_a_trained_model_is_registered_as_a_version_linked_to_its_run(
    admin, platform, mlflow_client_only_env
):
    engineer = await token_for(admin, "tess", "editor")
    project = await new_project(admin)
    gpu_id = f"a100-{uuid.uuid4().hex[:6]}"
    r = await admin.post(
        "/api/v1/gpu-types", headers=engineer, json={"id": gpu_id, "label": "A100", "env": "dev"}
    )
    assert r.status_code == 403
    r = await admin.post(
        "/api/v1/gpu-types", json={"id": gpu_id.upper(), "label": "A100", "env": "dev"}
    )
    assert r.status_code == 201, r.text
    r = await admin.get("/api/v1/gpu-types", params={"env": "dev"}, headers=engineer)
    assert gpu_id in [o["id"] for o in r.json()["items"]]

    model = (
        await admin.post(
            "/api/v1/registry/models",
            headers=engineer,
            json={"name": "sentiment", "project_id": project},
        )
    ).json()
    body = {
        "name": "sentiment-train",
        "project_id": project,
        "env": "dev",
        "job_type": "training",
        "command": ["python", str(TRAIN)],
        "python_env": str(mlflow_client_only_env),
        "parameters": {"epochs": 3},
        "use_gpu": False,
        "resources": {"gpu_type": gpu_id},
        "register_model": {"model_id": model["id"]},
    }
    r = await admin.post("/api/v1/jobs", headers=engineer, json=body)
    assert r.status_code == 422
    assert [v["rule"] for v in r.json()["violations"]] == ["gpu-type-without-gpu"]

    r = await admin.post(
        "/api/v1/jobs", headers=engineer, json={**body, "resources": {"cpu": 1, "memory": "2Gi"}}
    )
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["created_by"] == "tess"
    assert job["resources"] == {"cpu": "1", "memory": "2Gi", "gpus": None, "gpu_type": None}
    job = await wait_finished(admin, job, engineer)
    logs = (await admin.get(f"/api/v1/jobs/{job['id']}/logs", headers=engineer)).text
    assert job["status"] == "succeeded", (job, logs)

    # The run as the jobs API shows it: the metric and the artifact the job logged.
    run = job["experiment_run"]
    assert run["metrics"] == {"accuracy": pytest.approx(0.9)}
    assert run["artifacts"] == ["model.bin"]
    [artifact_uri] = run["artifact_uris"]
    assert artifact_uri.startswith("mlflow-artifacts:/")  # served by the tracking server
    # And as MLflow itself has it, through the platform's server the job logged to.
    assert platform.tracking_uri.startswith("http://")
    async with httpx.AsyncClient(base_url=platform.tracking_uri, timeout=30) as mlflow:
        got = (
            await mlflow.get("/api/2.0/mlflow/runs/get", params={"run_id": run["tracking_run_id"]})
        ).json()["run"]
        assert got["info"]["status"] == "FINISHED"
        assert {m["key"]: m["value"] for m in got["data"]["metrics"]} == {"accuracy": 0.9}
        served = await mlflow.get(f"/get-artifact?path=model.bin&run_uuid={run['tracking_run_id']}")
        assert served.content == b"weights"

    deadline = time.monotonic() + 15
    while True:
        versions = (
            await admin.get(f"/api/v1/registry/models/{model['id']}/versions", headers=engineer)
        ).json()["items"]
        if versions:
            break
        assert time.monotonic() < deadline, "no version was registered"
        await asyncio.sleep(0.2)
    [version] = versions
    assert version["run_id"] == run["tracking_run_id"]
    assert version["metrics"] == {"accuracy": pytest.approx(0.9)}
    assert version["artifact_uri"] == artifact_uri

    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as anonymous:
        spec = (await anonymous.get("/api/v1/openapi.json")).json()
    assert "/api/v1/jobs" in spec["paths"] and "/api/v1/gpu-types" in spec["paths"]
