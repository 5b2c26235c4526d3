"""A training job through the gateway: validated against the env's GPU types, run locally,
tracked in MLflow, and its model registered by the registry from the JobSucceeded event."""

import asyncio
import sys
import time
import uuid
from pathlib import Path

import httpx

from tests.e2e.test_use_cases import new_project, token_for

pytestmark = __import__("pytest").mark.e2e

TRAIN = Path(__file__).parent.parent / "jobs" / "scripts" / "train.py"


async def test_a_trained_model_is_registered_as_a_version_linked_to_its_run(admin, platform):
    engineer = await token_for(admin, "tess", "editor")
    project = await new_project(admin)
    gpu_id = f"a100-{uuid.uuid4().hex[:6]}"
    r = await admin.post("/api/v1/gpu-types", headers=engineer,
                         json={"id": gpu_id, "label": "A100", "env": "dev"})
    assert r.status_code == 403
    r = await admin.post("/api/v1/gpu-types", json={"id": gpu_id.upper(), "label": "A100", "env": "dev"})
    assert r.status_code == 201, r.text
    r = await admin.get("/api/v1/gpu-types", params={"env": "dev"}, headers=engineer)
    assert gpu_id in [o["id"] for o in r.json()["items"]]

    model = (await admin.post("/api/v1/registry/models", headers=engineer,
                              json={"name": "sentiment", "project_id": project})).json()
    body = {
        "name": "sentiment-train", "project_id": project, "env": "dev", "job_type": "training",
        "command": [sys.executable, str(TRAIN)], "parameters": {"epochs": 3},
        "use_gpu": False, "resources": {"gpu_type": gpu_id}, "register_model": {"model_id": model["id"]},
    }
    r = await admin.post("/api/v1/jobs", headers=engineer, json=body)
    assert r.status_code == 422
    assert [v["rule"] for v in r.json()["violations"]] == ["gpu-type-without-gpu"]

    r = await admin.post("/api/v1/jobs", headers=engineer, json={**body, "resources": {}})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["created_by"] == "tess"
    deadline = time.monotonic() + 30
    while job["status"] not in ("succeeded", "failed", "killed"):
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.2)
        job = (await admin.get(f"/api/v1/jobs/{job['id']}", headers=engineer)).json()
    assert job["status"] == "succeeded", job
    run = job["experiment_run"]
    assert run["metrics"] == {"accuracy": 0.9}

    deadline = time.monotonic() + 15
    while True:
        versions = (await admin.get(f"/api/v1/registry/models/{model['id']}/versions",
                                    headers=engineer)).json()["items"]
        if versions:
            break
        assert time.monotonic() < deadline, "no version was registered"
        await asyncio.sleep(0.2)
    [version] = versions
    assert version["run_id"] == run["tracking_run_id"]
    assert version["metrics"] == {"accuracy": 0.9}
    assert version["artifact_uri"] == run["artifact_uris"][0]

    async with httpx.AsyncClient(base_url=platform.gateway_url, timeout=30) as anonymous:
        spec = (await anonymous.get("/api/v1/openapi.json")).json()
    assert "/api/v1/jobs" in spec["paths"] and "/api/v1/gpu-types" in spec["paths"]
