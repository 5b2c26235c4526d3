"""`python -m bench pipelines` (and the last part of `make bench`): the local engine on the
platform's gateway, jobs and pipelines processes, its stages real no-op jobs of the jobs
service's local executor, tracked by the platform's MLflow server.

1. Hand-off: a chain of 20 stages; for each consecutive pair, from the previous stage's job's
   JobSucceeded to the next stage's job's JobStarted (each event's `time`, stamped at its
   commit), p50 and p99 of the 19. Beside it, the engine's own part: from that JobSucceeded to
   the next stage's PipelineStageRequested; the rest is the jobs service starting the job (its
   MLflow run created on the tracking server, then the process spawned). The executor's noticing
   that a process exited (a watcher round, `jobs_watch_seconds`) comes before JobSucceeded and
   is in neither.
2. Burst: 50 runs of a 5-stage fan-out / fan-in pipeline started at once; every run must end
   succeeded before the timeout (none stalls); the drain time (first start to last run's end)
   is printed beside the sum of the jobs' own durations (their `finished_at - started_at`).
"""

import asyncio
import contextlib
import itertools
import json
import logging
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import nats
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import ConsumerConfig, DeliverPolicy

from bench import report, targets
from bench.load import percentile
from deploy.launcher import Platform
from shared.local_infra import create_database, drop_database
from shared.service_table import SERVICES

log = logging.getLogger("bench.pipelines")
SERVICES_USED = ("gateway", "jobs", "pipelines")
NO_OP = {"command": [sys.executable, "-c", "pass"]}
CHAIN_STAGES = 20
BURST_RUNS = 50
RUN_TIMEOUT_SECONDS = 900.0


def _stage(name: str, *depends_on: str) -> dict:
    return {"name": name, "kind": "train", "depends_on": list(depends_on), "parameters": NO_OP}


def chain(stages: int) -> dict:
    names = [f"s{i:02d}" for i in range(1, stages + 1)]
    return {"stages": [_stage(name, *names[i - 1 : i]) for i, name in enumerate(names)]}


FAN_OUT_FAN_IN = {
    "stages": [
        _stage("prepare"),
        _stage("left", "prepare"),
        _stage("middle", "prepare"),
        _stage("right", "prepare"),
        _stage("join", "left", "middle", "right"),
    ]
}


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


class Api:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def call(self, method: str, path: str, **kwargs) -> dict:
        reply = await self.client.request(method, f"/api/v1{path}", **kwargs)
        if reply.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {reply.status_code} {reply.text[:300]}")
        return reply.json()

    async def pipeline(self, project: str, definition: dict) -> str:
        body = {
            "name": f"bench-{uuid.uuid4().hex[:8]}",
            "project_id": project,
            "definition": definition,
        }
        return (await self.call("POST", "/pipelines", json=body))["id"]

    async def start(self, pipeline: str) -> dict:
        return await self.call("POST", f"/pipelines/{pipeline}/runs", json={"env": "dev"})

    async def finished_runs(self, pipeline: str, expected: int, deadline: float) -> list[dict]:
        """The pipeline's runs once every one has finished, or as they are at the deadline."""
        while True:
            runs = (await self.call("GET", f"/pipelines/{pipeline}/runs", params={"limit": 1000}))[
                "items"
            ]
            done = [r for r in runs if r["status"] in ("succeeded", "failed", "cancelled")]
            if len(done) >= expected or time.monotonic() > deadline:
                return runs
            await asyncio.sleep(0.2)

    async def jobs_of(self, run_id: str) -> list[dict]:
        return (await self.call("GET", "/jobs", params={"pipeline_run_id": run_id, "limit": 100}))[
            "items"
        ]


async def stage_event_times(nats_url: str, run_id: str) -> dict[tuple[str, str], datetime]:
    """(subject, stage) -> the event's time, for the run's job and stage-request events."""
    client = await nats.connect(nats_url)
    times: dict[tuple[str, str], datetime] = {}
    try:
        js = client.jetstream()
        for stream, subject, stage_field in (
            ("JOBS", "jobs.job.succeeded", "pipeline_stage"),
            ("JOBS", "jobs.job.started", "pipeline_stage"),
            ("PIPELINES", "pipelines.stage.requested", "stage"),
        ):
            sub = await js.pull_subscribe(
                subject,
                stream=stream,
                config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, inactive_threshold=5),
            )
            try:
                while True:
                    try:
                        batch = await sub.fetch(500, timeout=0.5)
                    except (TimeoutError, NatsTimeout):
                        break
                    for message in batch:
                        event = json.loads(message.data)
                        if event["data"].get("pipeline_run_id") == run_id:
                            times[subject, event["data"][stage_field]] = _at(event["time"])
                        await message.ack()
            finally:
                await sub.unsubscribe()
    finally:
        await client.close()
    return times


def _summary(gaps: list[float]) -> dict:
    return {
        "p50_ms": round(percentile(gaps, 50), 1),
        "p99_ms": round(percentile(gaps, 99), 1),
        "max_ms": round(max(gaps), 1),
    }


async def hand_offs(api: Api, project: str, nats_url: str) -> dict:
    pipeline = await api.pipeline(project, chain(CHAIN_STAGES))
    run = await api.start(pipeline)
    [finished] = await api.finished_runs(pipeline, 1, time.monotonic() + RUN_TIMEOUT_SECONDS)
    if finished["status"] != "succeeded":
        raise RuntimeError(f"the {CHAIN_STAGES}-stage chain ended {finished['status']}")
    times = await stage_event_times(nats_url, run["id"])
    names = [s["name"] for s in chain(CHAIN_STAGES)["stages"]]

    def gaps(to: str) -> list[float]:
        return [
            (times[to, after] - times["jobs.job.succeeded", before]).total_seconds() * 1000
            for before, after in itertools.pairwise(names)
        ]

    full, engine = gaps("jobs.job.started"), gaps("pipelines.stage.requested")
    log.info("hand-offs ms: %s", ", ".join(f"{g:.0f}" for g in full))
    log.info("engine's part ms: %s", ", ".join(f"{g:.0f}" for g in engine))
    return {
        "stages": CHAIN_STAGES,
        "samples": len(full),
        **_summary(full),
        "engine": _summary(engine),
    }


async def burst(api: Api, project: str) -> dict:
    pipeline = await api.pipeline(project, FAN_OUT_FAN_IN)
    started = time.monotonic()
    runs = await asyncio.gather(*(api.start(pipeline) for _ in range(BURST_RUNS)))
    first_start = min(_at(r["start_time"] or r["created_at"]) for r in runs)
    ended = await api.finished_runs(pipeline, BURST_RUNS, started + RUN_TIMEOUT_SECONDS)
    statuses = [r["status"] for r in ended]
    stalled = [r["id"] for r in ended if r["status"] != "succeeded"]
    last_end = max((_at(r["end_time"]) for r in ended if r["end_time"]), default=first_start)
    job_seconds = 0.0
    jobs = 0
    for run in ended:
        for job in await api.jobs_of(run["id"]):
            if job["started_at"] and job["finished_at"]:
                jobs += 1
                job_seconds += (_at(job["finished_at"]) - _at(job["started_at"])).total_seconds()
    durations = [
        (_at(r["end_time"]) - _at(r["start_time"])).total_seconds()
        for r in ended
        if r["end_time"] and r["start_time"]
    ]
    return {
        "runs": BURST_RUNS,
        "stages": len(FAN_OUT_FAN_IN["stages"]),
        "succeeded": statuses.count("succeeded"),
        "stalled": stalled,
        "jobs": jobs,
        "drain_seconds": round((last_end - first_start).total_seconds(), 2),
        "jobs_own_seconds": round(job_seconds, 2),
        "longest_run_seconds": round(max(durations, default=0.0), 2),
    }


async def run_pipelines(postgres_url: str, nats_url: str) -> dict:
    """Both measurements on a platform of their own (its own database), then its results."""
    log_dir = Path(tempfile.mkdtemp(prefix="bench_pipelines_logs_"))
    name = f"modelplane_bench_pipelines_{uuid.uuid4().hex[:8]}"
    database_url = await create_database(postgres_url, name)
    table = [spec for spec in SERVICES if spec.name in SERVICES_USED]
    platform = Platform(
        table=table,
        database_url=database_url,
        nats_url=nats_url,
        log_dir=log_dir,
        tracking_workers=1,
        ready_timeout=300,
        env={"MODELPLANE_JOBS_RUN_AS": ""},
    )
    try:
        await platform.start()
        log.info("platform at %s; logs in %s", platform.gateway_url, log_dir)
        headers = {"Authorization": f"Bearer {platform.admin_token}"}
        async with httpx.AsyncClient(
            base_url=platform.gateway_url, headers=headers, timeout=60
        ) as client:
            api = Api(client)
            project = (
                await api.call("POST", "/projects", json={"name": f"bench-{uuid.uuid4().hex[:6]}"})
            )["id"]
            results = {"hand_off_ms": await hand_offs(api, project, nats_url)}
            results["burst"] = await burst(api, project)
    finally:
        await platform.stop()
        with contextlib.suppress(Exception):
            await drop_database(postgres_url, name)
        with contextlib.suppress(Exception):
            await drop_database(postgres_url, f"{name}_mlflow")
    results["targets"] = [check.as_json() for check in targets.pipeline_checks(results)]
    return results


def table(results: dict) -> str:
    hand, burst_ = results["hand_off_ms"], results["burst"]
    lines = [
        (
            f"pipelines: stage hand-off on the local engine ({hand['stages']}-stage chain of no-op "
            f"jobs, {hand['samples']} hand-offs): p50 {hand['p50_ms']} ms, p99 {hand['p99_ms']} ms, "
            f"max {hand['max_ms']} ms; the engine's part (JobSucceeded -> PipelineStageRequested) "
            f"p50 {hand['engine']['p50_ms']} ms, p99 {hand['engine']['p99_ms']} ms"
        ),
        (
            f"pipelines: {burst_['runs']} runs of a {burst_['stages']}-stage fan-out/fan-in at once: "
            f"{burst_['succeeded']} succeeded, {len(burst_['stalled'])} stalled; drain "
            f"{burst_['drain_seconds']} s beside the jobs' own {burst_['jobs_own_seconds']} s "
            f"({burst_['jobs']} jobs); longest run {burst_['longest_run_seconds']} s"
        ),
    ]
    lines += report.target_lines(results["targets"], issue=36)
    return "\n".join(lines)
