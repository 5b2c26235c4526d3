"""The probe behind bench/README.md's "CPU ms/op" columns: Modelplane alone (no MLflow), seeded
as `make bench` seeds it, one operation at a time for a window, and what each process spent.

    .venv/bin/python -m bench.probe transition,create_version
    .venv/bin/python -m bench.probe transition --env MODELPLANE_REGISTRY_CONNECTIONS=6 \\
        --env MODELPLANE_REGISTRY_CONNECTIONS=12 --rounds 3

Each `--env` is a variant of the platform's environment (`A=1,B=2` sets two variables); the
variants take turns, round after round, each on a platform started afresh over the same seeded
database, so an A/B reads the same data on the same machine minutes apart. Per window it prints
ops/s, p50, p99, how steadily the requests finished (the spread of the number finished per
0.1 s and per 1 s), the machine's idle share, the share the hypervisor stole and context switches
per operation (`/proc/stat`), and CPU milliseconds per operation of each service, Postgres (all
its processes), NATS and the load generator (this process), read from `/proc` around the
window; under create_version, also the event latency as `make bench` measures it (commit to a
subscriber in its own process). Like `make bench`, a cell starts after VACUUM and CHECKPOINT.
"""

import argparse
import asyncio
import contextlib
import gc
import logging
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import psutil

from bench import OPERATIONS
from bench.events import EventLatency
from bench.load import ModelplaneTarget, Result, percentile, run_load
from bench.memory import process_trees
from bench.run import Infra, settle, until_stopped
from bench.seed import seed
from deploy.launcher import Platform
from shared.local_infra import create_database, drop_database

SHARED_PROCESSES = {"postgres": "postgres", "nats-server": "nats"}


def _cpu_seconds(processes: Iterable[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):  # gone meanwhile
            times = process.cpu_times()
            total += times.user + times.system
    return total


def cpu_by_part(services: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far: each service with its children, Postgres, NATS, this process."""
    spent = {name: _cpu_seconds(process_trees([pid])) for name, pid in services.items()}
    shared: dict[str, list[psutil.Process]] = {part: [] for part in SHARED_PROCESSES.values()}
    for process in psutil.process_iter(["name"]):
        if part := SHARED_PROCESSES.get(process.info["name"]):
            shared[part].append(process)
    spent.update({part: _cpu_seconds(processes) for part, processes in shared.items()})
    spent["load generator"] = _cpu_seconds([psutil.Process()])
    return spent


def machine_counters() -> tuple[int, int, int, int]:
    """(idle + iowait jiffies, stolen jiffies, all jiffies, context switches) of the whole
    machine since boot. Stolen: the hypervisor ran someone else on our cores."""
    with open("/proc/stat") as stat:
        lines = stat.read().splitlines()
    ticks = [int(field) for field in lines[0].split()[1:]]
    switches = next(int(line.split()[1]) for line in lines if line.startswith("ctxt "))
    return ticks[3] + ticks[4], ticks[7], sum(ticks), switches


def variant(spec: str) -> dict[str, str]:
    """`A=1,B=2` -> {"A": "1", "B": "2"}."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    malformed = [item for item in items if "=" not in item or item.startswith("=")]
    if malformed or not items:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE[,NAME=VALUE…], got {spec!r}")
    pairs = (item.split("=", 1) for item in items)
    return {name.strip(): value.strip() for name, value in pairs}


async def probe(args: argparse.Namespace) -> None:
    """Ctrl-C or SIGTERM stops the platform and drops the probe's database."""
    await until_stopped(_probe(args))


async def _probe(args: argparse.Namespace) -> None:
    async with Infra() as infra:
        database_name = f"modelplane_probe_{uuid.uuid4().hex[:8]}"
        database_url = await create_database(infra.postgres_url, database_name)
        seeded: ModelplaneTarget | None = None
        try:
            for _ in range(args.rounds):
                for env in args.env or [{}]:
                    platform = Platform(
                        database_url=database_url,
                        nats_url=infra.nats_url,
                        log_dir=Path(tempfile.mkdtemp(prefix="probe_logs_")),
                        env=env,
                    )
                    await platform.start()
                    try:
                        target = ModelplaneTarget(platform.gateway_url, platform.admin_token or "")
                        await seed_or_adopt(target, seeded, args)
                        seeded = target
                        label = ",".join(f"{k}={v}" for k, v in env.items()) or "(as is)"
                        for op in args.operations:
                            await settle(infra.postgres_url, [database_name])
                            line = await measure_cell(platform, target, op, args, infra)
                            print(f"{label} {line}", flush=True)
                    finally:
                        await platform.stop()
        finally:
            with contextlib.suppress(Exception):
                await drop_database(infra.postgres_url, database_name)


async def seed_or_adopt(
    target: ModelplaneTarget, seeded: ModelplaneTarget | None, args: argparse.Namespace
) -> None:
    """The first platform is seeded; the next ones, over the same database, take its data."""
    if seeded is None:
        await seed(target, args.models, args.versions, args.clients, 32)
        gc.collect()
        gc.freeze()
    else:
        target.project_id = seeded.project_id
        target.adopt(seeded)


async def measure_cell(
    platform: Platform, target: ModelplaneTarget, op: str, args: argparse.Namespace, infra: Infra
) -> str:
    """One window of `op`, as a line; under create_version, with the event latency beside it."""
    async with contextlib.AsyncExitStack() as stack:
        events = None
        if op == "create_version":  # the load make bench measures it under
            events = await stack.enter_async_context(EventLatency(infra.nats_url))
        result, machine, per_op = await measure(platform, target, op, args)
    line = window_line(f"{op} x{args.clients}", result, machine, per_op)
    if events is not None:
        latencies = events.in_window(*result.window_wall)
        line += (
            f"  | events p50 {percentile(latencies, 50):.2f}"
            f"  p99 {percentile(latencies, 99):.2f} ms"
        )
    return line


async def measure(
    platform: Platform, target: ModelplaneTarget, op: str, args: argparse.Namespace
) -> tuple[Result, dict[str, float], dict[str, float]]:
    before, machine_before = cpu_by_part(dict(platform.pids)), machine_counters()
    started = time.perf_counter()
    result = await run_load(target, op, args.clients, args.warmup, args.seconds)
    elapsed = time.perf_counter() - started
    after, machine_after = cpu_by_part(dict(platform.pids)), machine_counters()
    # CPU is read around warm-up and window alike: per operation, at the window's rate.
    operations = result.ops / result.seconds * elapsed
    per_op = {
        part: (after[part] - before.get(part, 0.0)) * 1000 / max(operations, 1) for part in after
    }
    idle, stolen, ticks, switches = (
        b - a for a, b in zip(machine_before, machine_after, strict=True)
    )
    machine = {
        "idle": idle / max(1, ticks) * 100,
        "stolen": stolen / max(1, ticks) * 100,
        "switches": switches / max(operations, 1),
    }
    return result, machine, per_op


def window_line(
    cell: str, result: Result, machine: dict[str, float], per_op: dict[str, float]
) -> str:
    summary = result.summary()
    parts = " ".join(f"{part} {ms:.2f}" for part, ms in per_op.items())
    (sd_short, least_short), (sd_long, least_long) = (result.rate_spread(s) for s in (0.1, 1))
    return (
        f"{cell} {summary['ops_per_s']:8.1f} ops/s  p50 {summary['p50_ms']:6.2f}"
        f"  p99 {summary['p99_ms']:6.2f} ms  errors {summary['errors']}"
        f"  rate per 0.1 s / 1 s: sd {sd_short:.0f} / {sd_long:.0f} %,"
        f" fewest {least_short:.0f} / {least_long:.0f} %"
        f"  idle {machine['idle']:4.1f} %  stolen {machine['stolen']:4.1f} %"
        f"  context switches/op {machine['switches']:.1f}"
        f"  | CPU ms/op: {parts}  total {sum(per_op.values()):.2f}"
    )


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.probe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "operations", type=lambda s: s.split(","), help=f"comma list of: {', '.join(OPERATIONS)}"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=variant,
        metavar="NAME=VALUE[,…]",
        help="a variant of the platform's environment; repeat for an A/B",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window (8)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up before it (1)")
    parser.add_argument("--clients", type=int, default=32, help="closed-loop clients (32)")
    parser.add_argument("--rounds", type=int, default=2, help="times through the variants (2)")
    parser.add_argument("--models", type=int, default=100, help="seeded models (100)")
    parser.add_argument("--versions", type=int, default=100, help="versions of each (100)")
    args = parser.parse_args(argv)
    unknown = [op for op in args.operations if op not in OPERATIONS]
    if unknown:
        parser.error(f"unknown operations {unknown}; known: {', '.join(OPERATIONS)}")
    return args


def main() -> None:
    args = arguments()
    logging.basicConfig(level=logging.WARNING)
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        asyncio.run(probe(args))
    else:
        uvloop.run(probe(args))


if __name__ == "__main__":
    main()
