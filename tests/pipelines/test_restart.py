"""The pipelines service killed mid-run and started again: the run goes on from its rows and
the answers that waited on the bus, and no stage is asked for twice."""

import asyncio
import contextlib
import uuid
from collections import Counter

import httpx

from tests.bus import stream_events
from tests.credentials import GatewayCredential
from tests.pipelines.conftest import ACTOR, PROJECT, create_app
from tests.pipelines.definitions import stage
from tests.pipelines.test_service import ENV, job_done, stages, wait_run


@contextlib.asynccontextmanager
async def running_service(settings):
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


async def test_a_restarted_service_finishes_the_run_executing_each_stage_once(
    pipelines_settings, nc
):
    definition = {
        "stages": [
            stage("prep", "train"),
            stage("left", "train", "prep"),
            stage("right", "train", "prep"),
            stage("join", "evaluate", "left", "right"),
        ]
    }
    async with running_service(pipelines_settings) as client:
        pipeline = (
            await client.post(
                "/pipelines",
                json={
                    "name": f"restart-{uuid.uuid4().hex[:6]}",
                    "project_id": PROJECT,
                    "definition": definition,
                },
            )
        ).json()
        run = (await client.post(f"/pipelines/{pipeline['id']}/runs", json={"env": ENV})).json()
        await job_done(nc, run, "prep")
        await wait_run(client, run, lambda r: stages(r)["left"] == "requested")

    # While the service is down, the jobs it asked for end; their events wait on the bus.
    await job_done(nc, run, "left")
    await job_done(nc, run, "right")
    await asyncio.sleep(0.3)

    async with running_service(pipelines_settings) as client:
        await wait_run(client, run, lambda r: stages(r)["join"] == "requested")
        await job_done(nc, run, "join")
        done = await wait_run(client, run, lambda r: r["status"] == "succeeded")
    assert set(stages(done).values()) == {"succeeded"}
    requested = Counter(
        e.data["stage"]
        for e in await stream_events(nc, "PIPELINES", "pipelines.stage.requested")
        if e.subject == run["id"]
    )
    assert requested == {"prep": 1, "left": 1, "right": 1, "join": 1}
