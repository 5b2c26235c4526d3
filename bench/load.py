"""Closed-loop HTTP load: N workers, each with its own keep-alive connection, each sending its
next request as soon as the previous one answered. A warm-up, then a measured window.

The measured load goes through aiohttp (a tenth of httpx's CPU per request here): the load
generator shares the machine's cores with both servers, so what it spends is taken from both.
Seeding uses httpx.
"""

import asyncio
import gc
import random
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
import httpx
import orjson

from bench.steadiness import spread

TIMEOUT = httpx.Timeout(30.0)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Result:
    ops: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    # When each counted request finished, in seconds from the window's start.
    finished_s: list[float] = field(default_factory=list, repr=False)
    window_wall: tuple[float, float] = (0.0, 0.0)
    first_error: str | None = None

    def summary(self) -> dict[str, float | int]:
        return {
            "ops_per_s": round(self.ops / self.seconds, 1),
            "p50_ms": round(percentile(self.latencies_ms, 50), 2),
            "p99_ms": round(percentile(self.latencies_ms, 99), 2),
            "errors": self.errors,
        }

    def rate_spread(self, bucket_s: float) -> tuple[float, float]:
        """How steady the window's completions came: the standard deviation of the number
        finished per `bucket_s` seconds, and the fewest, each in % of the mean. A closed loop's
        latency is the time its other clients' requests take to finish, so a slow stretch of a
        second lifts every latency in it: the tail follows this spread as much as the mean rate."""
        counts = [0] * int(self.seconds / bucket_s)
        for finished in self.finished_s:
            if (index := int(finished / bucket_s)) < len(counts):
                counts[index] += 1
        return spread(counts)


@dataclass
class SeedData:
    """What seeding created on one side; the load picks its targets from it."""

    # Seeded models: Modelplane id or MLflow name, and each one's versions as (label, id).
    models: list[str] = field(default_factory=list)
    versions: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # Empty models the create_version load writes into, one per worker.
    write_models: list[str] = field(default_factory=list)


class Target:
    """One side of the comparison: how each operation is sent."""

    name: str

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        self.base_url = base_url
        self.headers = headers
        self._json_headers = {**headers, "Content-Type": "application/json"}
        self.seed = SeedData()
        self._transition_next: dict[str, int] = {}

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers=self.headers,
            timeout=TIMEOUT,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    def connection(self) -> aiohttp.ClientSession:
        """One worker's keep-alive connection for the measured load."""
        return aiohttp.ClientSession(
            base_url=self.base_url,
            connector=aiohttp.TCPConnector(limit=1),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT.read),
            skip_auto_headers=("User-Agent",),
        )

    async def send(
        self,
        connection: aiohttp.ClientSession,
        method: str,
        path: str,
        *,
        json: object = None,
        params: dict | None = None,
    ) -> tuple[int, bytes]:
        """Send one request the way every load worker does; its status and body."""
        target = f"{path}?{urlencode(params)}" if params else path
        if json is None:
            reply = connection.request(method, target, headers=self.headers)
        else:
            reply = connection.request(
                method, target, headers=self._json_headers, data=orjson.dumps(json)
            )
        async with reply as response:
            return response.status, await response.read()

    def adopt(self, other: "Target") -> None:
        """Take over what `other` seeded and where its transitions got to: the same server,
        restarted (`bench.probe`)."""
        self.seed = other.seed
        self._transition_next = other._transition_next

    def next_transition(self, worker: int) -> tuple[str, str, str]:
        """(model, label, version id) of the version worker `worker` promotes next.

        Each worker cycles through the versions of its own seeded model; the counter lives on
        the target so a version is never promoted while it already serves production (409).
        """
        model = self.seed.models[worker % len(self.seed.models)]
        versions = self.seed.versions[model]
        k = self._transition_next.get(model, 0)
        self._transition_next[model] = k + 1
        label, version_id = versions[k % (len(versions) - 1)]  # the last one starts in production
        return model, label, version_id

    def request(self, op: str, worker: int, rng: random.Random) -> tuple[str, str, dict]:
        """The operation's (method, path, `send` arguments: json, params)."""
        raise NotImplementedError


class ModelplaneTarget(Target):
    name = "modelplane"
    prefix = "/api/v1/registry/models"

    def __init__(self, base_url: str, token: str) -> None:
        super().__init__(base_url, {"Authorization": f"Bearer {token}"})
        self.project_id = ""

    def request(self, op, worker, rng):
        p = self.prefix
        if op == "create_model":
            body = {"name": f"bench-{uuid.uuid4().hex}", "project_id": self.project_id}
            return "POST", p, {"json": body}
        if op == "create_version":
            model = self.seed.write_models[worker % len(self.seed.write_models)]
            return "POST", f"{p}/{model}/versions", {"json": {}}
        if op == "transition":
            _, _, version_id = self.next_transition(worker)
            return (
                "POST",
                f"{p}/versions/{version_id}/transition",
                {"json": {"stage": "production"}},
            )
        model = rng.choice(self.seed.models)
        if op == "latest_in_stage":
            return "GET", f"{p}/stages/production/latest", {"params": {"model_id": model}}
        if op == "get_version":
            label, _ = rng.choice(self.seed.versions[model])
            return "GET", f"{p}/{model}/versions/{label}", {}
        if op == "list_versions":
            return "GET", f"{p}/{model}/versions", {"params": {"limit": 100}}
        raise ValueError(op)


class MlflowTarget(Target):
    name = "mlflow"
    prefix = "/api/2.0/mlflow"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, {})

    def request(self, op, worker, rng):
        p = self.prefix
        if op == "create_model":
            return (
                "POST",
                f"{p}/registered-models/create",
                {"json": {"name": f"bench-{uuid.uuid4().hex}"}},
            )
        if op == "create_version":
            model = self.seed.write_models[worker % len(self.seed.write_models)]
            body = {"name": model, "source": MLFLOW_SOURCE}
            return "POST", f"{p}/model-versions/create", {"json": body}
        if op == "transition":
            model, label, _ = self.next_transition(worker)
            body = {
                "name": model,
                "version": label,
                "stage": "Production",
                "archive_existing_versions": True,
            }
            return "POST", f"{p}/model-versions/transition-stage", {"json": body}
        model = rng.choice(self.seed.models)
        if op == "latest_in_stage":
            body = {"name": model, "stages": ["Production"]}
            return "POST", f"{p}/registered-models/get-latest-versions", {"json": body}
        if op == "get_version":
            label, _ = rng.choice(self.seed.versions[model])
            return "GET", f"{p}/model-versions/get", {"params": {"name": model, "version": label}}
        if op == "list_versions":
            params = {"filter": f"name='{model}'", "max_results": 100}
            return "GET", f"{p}/model-versions/search", {"params": params}
        raise ValueError(op)


MLFLOW_SOURCE = "s3://bench-artifacts/model"


async def run_load(target: Target, op: str, clients: int, warmup: float, seconds: float) -> Result:
    """Warm up for `warmup` s, then count what completes inside the next `seconds` s."""
    connections = [target.connection() for _ in range(clients)]
    latencies: list[float] = []
    finished: list[float] = []
    counters = {"ops": 0, "errors": 0}
    first_error: list[str] = []
    t_start = time.perf_counter()
    wall_offset = time.time() - t_start
    measure_from = t_start + warmup
    measure_to = measure_from + seconds

    async def worker(index: int, connection: aiohttp.ClientSession) -> None:
        rng = random.Random(index)
        while (t0 := time.perf_counter()) < measure_to:
            method, path, arguments = target.request(op, index, rng)
            try:
                status, body = await target.send(connection, method, path, **arguments)
                ok = status < 400
                error = None if ok else f"{status} {body[:300]!r}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                ok, error = False, f"{type(exc).__name__}: {exc}"
            t1 = time.perf_counter()
            if measure_from <= t0 and t1 <= measure_to:
                if ok:
                    counters["ops"] += 1
                    latencies.append((t1 - t0) * 1000)
                    finished.append(t1 - measure_from)
                else:
                    counters["errors"] += 1
            if not ok:
                if not first_error:
                    first_error.append(error or "")
                await asyncio.sleep(0.01)  # a failing server must not turn this into a spin

    # The load generator's own collector must not stop every client mid-window (a full
    # collection here took 70-120 ms after seeding): off while measuring, as timeit does.
    gc.disable()
    try:
        await asyncio.gather(*(worker(i, c) for i, c in enumerate(connections)))
    finally:
        gc.enable()
        await asyncio.gather(*(c.close() for c in connections))
    return Result(
        ops=counters["ops"],
        errors=counters["errors"],
        seconds=seconds,
        latencies_ms=latencies,
        finished_s=finished,
        window_wall=(measure_from + wall_offset, measure_to + wall_offset),
        first_error=first_error[0] if first_error else None,
    )
