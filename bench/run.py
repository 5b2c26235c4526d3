"""Orchestration: infrastructure, both servers, seeding, the load matrix, events, memory, lists."""

import asyncio
import contextlib
import gc
import json
import logging
import math
import os
import signal
import tempfile
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Self, TypeVar

import asyncpg
from sqlalchemy.engine import make_url

from bench import Config, datasets, pipelines, report, targets
from bench.events import EventLatency
from bench.load import MlflowTarget, ModelplaneTarget, Result, percentile, run_load
from bench.memory import PeakSampler, tree_rss_mib
from bench.mlflow_server import MlflowServer
from bench.seed import seed
from deploy.launcher import STATE_DIR, Platform
from services.registry.store import encode_cursor
from shared.db import connect_raw
from shared.local_infra import (
    create_database,
    drop_database,
    start_embedded_nats,
    start_embedded_postgres,
    tcp_answers,
)

T = TypeVar("T")

log = logging.getLogger("bench")
LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
LOCAL_NATS = "nats://127.0.0.1:4222"
LIST_KEYS = ("10k", "1m")


def _clean(value):
    """NaN (no samples) -> None, so the JSON stays JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _p50_p99(values_ms: list[float]) -> dict[str, float]:
    """The JSON's `{"p50", "p99"}` of a list of latencies, in ms to two decimals."""
    return {"p50": round(percentile(values_ms, 50), 2), "p99": round(percentile(values_ms, 99), 2)}


class Infra:
    """Postgres and NATS: named by URL, else the local ones if they answer, else embedded."""

    def __init__(self) -> None:
        self.postgres_url = ""
        self.nats_url = ""
        self._stack = contextlib.ExitStack()

    async def __aenter__(self) -> Self:
        self.postgres_url = os.environ.get("MODELPLANE_DATABASE_URL") or ""
        if not self.postgres_url:
            if tcp_answers("127.0.0.1", 5432):
                self.postgres_url = LOCAL_POSTGRES
            else:
                pg = await asyncio.to_thread(
                    start_embedded_postgres, STATE_DIR / "bench-pgdata", True
                )
                self._stack.callback(pg.stop)
                self.postgres_url = pg.database_url("postgres")
        self.nats_url = os.environ.get("MODELPLANE_NATS_URL") or ""
        if not self.nats_url:
            if tcp_answers("127.0.0.1", 4222):
                self.nats_url = LOCAL_NATS
            else:
                server = start_embedded_nats(Path(tempfile.mkdtemp(prefix="bench_nats_")))
                self._stack.callback(server.stop)
                self.nats_url = server.url
        log.info("postgres %s, nats %s", self.postgres_url, self.nats_url)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stack.close()


async def list_latency(
    target: ModelplaneTarget, server_url: str, database_url: str, config: Config
) -> dict:
    """A model with N versions for each size, inserted by SQL, all before any is measured: the
    smaller models' versions then sit behind the largest one's, newer, as in a registry whose
    big model keeps growing. GET each model's first page and a page in the middle."""
    conn = await connect_raw(database_url)
    try:
        connection = target.connection()
        async with target.client() as client:
            sizes = dict(zip(LIST_KEYS, config.list_sizes, strict=False))
            models = {
                key: await _model_with_versions(conn, client, target, key, size)
                for key, size in sizes.items()
            }
            # As before every cell: the inserted rows vacuumed and their dirty pages written,
            # so the list at 1M pays for its size, not for the checkpoint that a million
            # inserted rows set off, which ran through its window.
            await settle(server_url, [make_url(database_url).database])
            pages = {key: await _pages(conn, models[key], size) for key, size in sizes.items()}
            timings = await _page_timings(connection, target, models, pages, config.list_samples)
    finally:
        await connection.close()
        await conn.close()
    out: dict[str, dict] = {}
    for key, size in sizes.items():
        first, deep = timings[key]["first"], timings[key]["deep"]
        log.info(
            "list %s (%d versions): first page p50 %.2f p99 %.2f ms; deep page p50 %.2f p99 %.2f ms",
            key,
            size,
            percentile(first, 50),
            percentile(first, 99),
            percentile(deep, 50),
            percentile(deep, 99),
        )
        out[key] = _p50_p99(first + deep)
    return out


async def _model_with_versions(conn, client, target: ModelplaneTarget, key: str, size: int) -> str:
    model = (
        await client.post(
            target.prefix,
            json={
                "name": f"list-{size}-{uuid.uuid4().hex[:6]}",
                "project_id": target.project_id,
            },
        )
    ).json()["id"]
    started = time.perf_counter()
    await conn.execute(
        """INSERT INTO registry.model_versions (id, model_id, version, stage, created_by)
           SELECT gen_random_uuid(), $1::uuid, g::text, 'none', 'bench'
           FROM generate_series(1, $2::int) AS g""",
        model,
        size,
    )
    # Written past the registry, so the counts its statements keep are kept here.
    await conn.execute(
        "UPDATE registry.registered_models SET version_counter = $2 WHERE id = $1::uuid",
        model,
        size,
    )
    await conn.execute(
        "UPDATE registry.version_counts SET n = n + $2"
        " WHERE model_id = $1::uuid AND stage = 'none'",
        model,
        size,
    )
    log.info("list %s: inserted %d versions in %.1f s", key, size, time.perf_counter() - started)
    return model


async def _pages(conn, model: str, size: int) -> dict[str, dict]:
    """The query of the model's first page of 100, and of the page from its middle on."""
    middle = await conn.fetchval(
        "SELECT seq FROM registry.model_versions WHERE model_id = $1::uuid ORDER BY seq OFFSET $2 LIMIT 1",
        model,
        size // 2,
    )
    return {"first": {"limit": 100}, "deep": {"limit": 100, "cursor": encode_cursor(middle)}}


async def _page_timings(
    connection,
    target: ModelplaneTarget,
    models: dict[str, str],
    pages: dict[str, dict[str, dict]],
    samples: int,
) -> dict[str, dict[str, list[float]]]:
    """`samples` timings of each model's each page, in rounds that GET every one once, so the
    sizes are timed on the same stretches of the machine's time: timed one size after the
    other, a machine that slowed in between read as the larger size costing more (the 1M
    model's p50 came out 18 % above the 10k one's that way, and 13 % below it in the next run)."""
    timings = {key: {which: [] for which in pages[key]} for key in models}
    warmup = 5  # rounds that warm the caches, not timed
    for i in range(warmup + samples):
        for key, model in models.items():
            for which, params in pages[key].items():
                t0 = time.perf_counter()
                status, body = await target.send(
                    connection, "GET", f"{target.prefix}/{model}/versions", params=params
                )
                elapsed = (time.perf_counter() - t0) * 1000
                if status != 200 or len(json.loads(body)["items"]) != 100:
                    raise RuntimeError(f"list {key} {which}: {status} {body[:300]!r}")
                if i >= warmup:
                    timings[key][which].append(elapsed)
    return timings


async def settle(server_url: str, databases: list[str]) -> None:
    """Before each cell (an operation at a client count): dead rows vacuumed, fresh statistics
    and visibility maps in both databases, and the dirty pages written out, so neither side's
    next cell pays for what the last one (or the seeding) left."""
    for name in databases:
        conn = await connect_raw(make_url(server_url).set(database=name))
        try:
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
    conn = await connect_raw(server_url)
    try:
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    log.info("settled: VACUUM ANALYZE in %s, CHECKPOINT", ", ".join(databases))


SECTIONS = ("registry", "serving", "pipelines")


async def main(config: Config, sections: tuple[str, ...] = SECTIONS) -> int:
    """The whole run, or the `sections` named; Ctrl-C or SIGTERM stops it the way a failure
    does, with the servers it started stopped and its databases dropped."""
    return await until_stopped(_sections(config, sections))


async def _sections(config: Config, sections: tuple[str, ...]) -> int:
    status = 0
    if "registry" in sections:
        status |= await _run(config)
    if "serving" in sections:
        from bench import serving  # MLflow's client and Ray's address: only this section's

        async with Infra() as infra:
            status |= await serving.run(config, infra.postgres_url, infra.nats_url)
    if "pipelines" in sections:
        status |= await _run_pipelines()
    return status


async def _run_pipelines() -> int:
    """The pipelines section (bench/pipelines.py), on a platform of its own."""
    async with Infra() as infra:
        results = await pipelines.run_pipelines(infra.postgres_url, infra.nats_url)
    print()
    print(pipelines.table(results))
    return report.written(results, "pipelines")


async def until_stopped(run: Awaitable[T]) -> T:
    """Await `run` in this task, which Ctrl-C or SIGTERM cancels: `finally` blocks run and
    clean up as on a failure, where the default SIGTERM would end the process without them;
    then the process exits with status 143."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(stop_signal, task.cancel)
    try:
        return await run
    except asyncio.CancelledError:
        log.warning("stopped: the servers it started are stopped and its databases dropped")
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(stop_signal)


async def _run(config: Config) -> int:
    log.info("config %s", config)
    log_dir = Path(tempfile.mkdtemp(prefix="bench_logs_"))
    max_clients = max(config.clients)
    results: dict = {
        "operations": [],
        "event_latency_ms": {"p50": None, "p99": None},  # measured during create_version
        "memory_mib": {},
        "list_latency_ms": {},
    }
    async with Infra() as infra:
        mp_db_name = f"modelplane_bench_{uuid.uuid4().hex[:8]}"
        mp_db = await create_database(infra.postgres_url, mp_db_name)
        mlflow = MlflowServer(infra.postgres_url, workers=config.mlflow_workers, log_dir=log_dir)
        platform = Platform(database_url=mp_db, nats_url=infra.nats_url, log_dir=log_dir)
        try:
            # A TaskGroup, not gather: if one fails the other is cancelled and awaited, so the
            # platform never stops while it is still starting.
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(platform.start())
                    group.create_task(mlflow.start())
            except* Exception as errors:  # noqa: BLE001 - raised again at once
                raise errors.exceptions[0] from None
            log.info(
                "platform at %s (pids %s); mlflow at %s; logs in %s",
                platform.gateway_url,
                platform.pids,
                mlflow.url,
                log_dir,
            )
            mp = ModelplaneTarget(platform.gateway_url, platform.admin_token or "")
            ml = MlflowTarget(mlflow.url)
            # Both sides at once: seeding is not measured, and it halves the wait.
            await asyncio.gather(
                *(
                    seed(
                        target,
                        config.seed_models,
                        config.seed_versions,
                        max_clients,
                        config.seed_concurrency,
                    )
                    for target in (mp, ml)
                )
            )
            # What seeding left is kept to the end: no collection of the load generator's need
            # walk it again (`run_load` also holds the collector off while it measures).
            gc.collect()
            gc.freeze()

            def mp_pids() -> list[int]:
                return list(platform.pids.values())

            def ml_pids() -> list[int]:
                return [p.pid for p in mlflow.tree()[:1]]

            await asyncio.sleep(2)
            results["memory_mib"]["modelplane_idle"] = round(tree_rss_mib(mp_pids()), 1)
            results["memory_mib"]["mlflow_idle"] = round(tree_rss_mib(ml_pids()), 1)
            # The platform's own MLflow tracking server, apart from the services it serves.
            tracking = [pid for name, pid in platform.infra_pids.items() if name == "mlflow"]
            results["memory_mib"]["tracking_idle"] = round(tree_rss_mib(tracking), 1)
            mp_peak = PeakSampler(mp_pids)
            ml_peak = PeakSampler(ml_pids)

            for op in config.operations:
                for clients in config.clients:
                    # Postgres on these machines runs without autovacuum: the dead rows one
                    # cell leaves (every transition's, every published event's in the outbox)
                    # would slow the next. Both databases are vacuumed before each, as
                    # autovacuum would.
                    await settle(infra.postgres_url, [mp_db_name, mlflow.database])
                    row: dict = {"op": op, "clients": clients}
                    for target, sampler in ((mp, mp_peak), (ml, ml_peak)):
                        events = None
                        async with contextlib.AsyncExitStack() as stack:
                            if clients == max_clients:
                                await stack.enter_async_context(sampler)
                            if target is mp and op == "create_version" and clients == max_clients:
                                events = await stack.enter_async_context(
                                    EventLatency(infra.nats_url)
                                )
                            result: Result = await run_load(
                                target, op, clients, config.warmup_seconds, config.seconds
                            )
                        row[target.name] = result.summary()
                        sd, fewest = result.rate_spread(1.0)
                        row.setdefault("rate_per_1s", {})[target.name] = {
                            "sd_pct": round(sd, 1),
                            "fewest_pct": round(fewest, 1),
                        }
                        if result.first_error:
                            log.warning(
                                "%s %s x%d: first error: %s",
                                target.name,
                                op,
                                clients,
                                result.first_error,
                            )
                        if events is not None:
                            lat = events.in_window(*result.window_wall)
                            results["event_latency_ms"] = event_ms = _p50_p99(lat)
                            log.info(
                                "event latency: %d events, p50 %.2f p99 %.2f ms",
                                len(lat),
                                event_ms["p50"],
                                event_ms["p99"],
                            )
                        log.info("%-10s %-16s x%-3d %s", target.name, op, clients, row[target.name])
                    mp_ops, ml_ops = row["modelplane"]["ops_per_s"], row["mlflow"]["ops_per_s"]
                    row["ratio"] = round(mp_ops / ml_ops, 2) if ml_ops else None
                    results["operations"].append(row)
            results["memory_mib"]["modelplane_load"] = round(mp_peak.peak, 1)
            results["memory_mib"]["mlflow_load"] = round(ml_peak.peak, 1)
            results["memory_mib"] = {
                k: results["memory_mib"][k]
                for k in (
                    "modelplane_idle",
                    "modelplane_load",
                    "mlflow_idle",
                    "mlflow_load",
                    "tracking_idle",
                )
            }
            await mlflow.stop()  # its CPU is not the list benchmark's
            results["list_latency_ms"] = await list_latency(mp, infra.postgres_url, mp_db, config)
        finally:
            await mlflow.stop()
            await platform.stop()
            with contextlib.suppress(Exception):
                await drop_database(infra.postgres_url, mp_db_name)
            with contextlib.suppress(Exception):  # the platform's MLflow server's store
                await drop_database(infra.postgres_url, f"{mp_db_name}_mlflow")
    # The platform is stopped: the hashing has the machine the way md5sum has it.
    results["datasets"] = await asyncio.to_thread(datasets.measure, config.datasets_bytes)
    return _report(_clean(results), "registry")


async def datasets_only(config: Config) -> int:
    """`python -m bench datasets`: the datasets section alone, no platform."""
    results = {"datasets": await asyncio.to_thread(datasets.measure, config.datasets_bytes)}
    return _report(results, "datasets")


def _report(results: dict, section: str) -> int:
    results["targets"] = [check.as_json() for check in targets.checks(results)]
    print()
    print(report.table(results))
    return report.written(results, section)
