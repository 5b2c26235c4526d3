"""A pipeline through the gateway on the platform as `make up` runs it: its stages run as real
jobs of the jobs service, and the local engine advances on their events."""

import asyncio
import sys
import time

from tests.bus import stream_events
from tests.e2e.test_use_cases import new_project, token_for

pytestmark = __import__("pytest").mark.e2e

QUICK = {"command": [sys.executable, "-c", "print('stage done')"]}


async def wait_run(client, headers, pipeline_id: str, run_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        reply = await client.get(f"/api/v1/pipelines/{pipeline_id}/runs/{run_id}", headers=headers)
        assert reply.status_code == 200, reply.text
        run = reply.json()
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return run
        assert time.monotonic() < deadline, run
        await asyncio.sleep(0.3)


async def test_a_two_stage_pipeline_runs_its_stages_as_jobs_to_success(admin, bus):
    engineer = await token_for(admin, "pia", "editor")
    project = await new_project(admin)
    definition = {"stages": [
        {"name": "train", "kind": "train", "depends_on": [], "parameters": QUICK},
        {"name": "evaluate", "kind": "evaluate", "depends_on": ["train"], "parameters": QUICK},
    ]}  # fmt: skip
    r = await admin.post("/api/v1/pipelines", headers=engineer,
                         json={"name": "nightly", "project_id": project, "definition": definition})
    assert r.status_code == 201, r.text
    pipeline = r.json()

    bad = {"stages": [{"name": "a", "kind": "train", "depends_on": ["a"], "parameters": QUICK}]}
    r = await admin.post("/api/v1/pipelines", headers=engineer,
                         json={"name": "loop", "project_id": project, "definition": bad})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"

    r = await admin.post(f"/api/v1/pipelines/{pipeline['id']}/runs", headers=engineer,
                         json={"env": "dev"})
    assert r.status_code == 201, r.text
    run = await wait_run(admin, engineer, pipeline["id"], r.json()["id"])
    assert run["status"] == "succeeded", run
    assert {s["name"]: s["status"] for s in run["stages"]} == {
        "train": "succeeded", "evaluate": "succeeded"}  # fmt: skip

    jobs = (await admin.get("/api/v1/jobs", headers=engineer,
                            params={"pipeline_run_id": run["id"]})).json()["items"]
    assert sorted(j["pipeline_stage"] for j in jobs) == ["evaluate", "train"]
    assert all(j["status"] == "succeeded" for j in jobs)

    events = [e for e in await stream_events(bus, "PIPELINES") if e.subject == run["id"]]
    assert any(e.type.endswith("pipelines.run.succeeded.v1") for e in events), [
        e.type for e in events]

    r = await admin.get("/api/v1/openapi.json")
    assert "/api/v1/pipelines/{pipeline_id}/runs" in r.json()["paths"]
