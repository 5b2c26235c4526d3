"""`python -m bench serving`: predictions through the gateway beside the same request straight to
Ray Serve, promotion to a healthy version on Ray Serve and to DeploymentHealthy on the bus, and
the platform's idle memory with its Ray head apart. See bench/README.md.

The platform runs as `make up` runs it, its own Ray head included (`start_ray=True`).
"""

import asyncio
import json
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import mlflow.pyfunc
import nats
from mlflow.tracking import MlflowClient

from bench import Config, report, targets
from bench.load import Result, Target, percentile, run_load
from bench.memory import tree_rss_mib
from deploy.launcher import Platform
from services.serving.integrations.backend import MODEL_VERSION_ID_LABEL
from services.serving.integrations.ray_serve import APPLICATIONS_PATH
from shared.local_infra import create_database, drop_database

log = logging.getLogger("bench.serving")

PROMOTIONS = 5
REQUEST = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}
MODEL_CODE = """
import mlflow
from mlflow.pyfunc import PythonModel


class Double(PythonModel):
    def predict(self, context, model_input, params=None):
        return [2 * float(x) for x in model_input["x"]]


mlflow.models.set_model(Double())
"""
# A replica's first start imports Ray, MLflow and pandas in a new worker: minutes on a busy
# two-core machine.
READY_WITHIN_SECONDS = 900


class PredictTarget(Target):
    """One way to the same model: the gateway's predict route, or Serve's route for it."""

    def __init__(self, name: str, base_url: str, path: str, headers: dict[str, str]) -> None:
        super().__init__(base_url, headers)
        self.name = name
        self.path = path

    def request(self, op, worker, rng):
        return "POST", self.path, {"json": REQUEST}


def log_model(tracking_uri: str, root: Path) -> str:
    """A pyfunc model logged to a run on the platform's tracking server; its artifact URI."""
    code = root / "double.py"
    code.write_text(MODEL_CODE)
    mlflow.pyfunc.save_model(path=str(root / "model"), python_model=str(code))
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # mlflow-artifacts: resolves against it
    client = MlflowClient(tracking_uri)
    run = client.create_run(client.get_experiment_by_name("Default").experiment_id)
    client.log_artifacts(run.info.run_id, str(root / "model"), "model")
    client.set_terminated(run.info.run_id)
    return f"{run.info.artifact_uri}/model"


async def _until(check, timeout: float = READY_WITHIN_SECONDS, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"not reached within {timeout} s: {check.__name__}")
        await asyncio.sleep(every)
    return result


async def _ray_up(dashboard_url: str) -> None:
    async with httpx.AsyncClient(base_url=dashboard_url, timeout=5) as ray:

        async def answers() -> bool:
            try:
                return (await ray.get(APPLICATIONS_PATH)).status_code == 200
            except httpx.HTTPError:
                return False

        await _until(answers, every=1.0)


class Serving:
    """The platform seen by the bench: a model, its versions, one endpoint following production."""

    def __init__(
        self, platform: Platform, client: httpx.AsyncClient, ray: httpx.AsyncClient
    ) -> None:
        self.platform = platform
        self.client = client
        self.ray = ray
        self.model_id = ""
        self.endpoint_id = ""

    async def _ok(self, method: str, path: str, **kwargs) -> dict:
        response = await self.client.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    async def set_up(self, artifact_uri: str, versions: int) -> list[str]:
        project = (
            await self._ok(
                "POST", "/api/v1/projects", json={"name": f"bench-{uuid.uuid4().hex[:6]}"}
            )
        )["id"]
        self.model_id = (
            await self._ok(
                "POST",
                "/api/v1/registry/models",
                json={"name": "bench-serving", "project_id": project},
            )
        )["id"]
        ids = [
            (
                await self._ok(
                    "POST",
                    f"/api/v1/registry/models/{self.model_id}/versions",
                    json={"artifact_uri": artifact_uri},
                )
            )["id"]
            for _ in range(versions)
        ]
        await self.promote(ids[0])
        self.endpoint_id = (
            await self._ok(
                "POST",
                "/api/v1/serving/endpoints",
                json={
                    "name": "bench",
                    "project_id": project,
                    "model_id": self.model_id,
                    "env": "dev",
                    "follow_stage": "production",
                },
            )
        )["id"]
        await self.wait_live(ids[0])
        return ids

    async def promote(self, version_id: str) -> None:
        await self._ok(
            "POST",
            f"/api/v1/registry/models/versions/{version_id}/transition",
            json={"stage": "production"},
        )

    async def endpoint(self) -> dict:
        return await self._ok("GET", f"/api/v1/serving/endpoints/{self.endpoint_id}")

    async def wait_live(self, version_id: str) -> dict:
        """Until the endpoint's traffic is on a healthy deployment of the version and every
        other deployment is retired; that live deployment."""

        async def switched() -> dict | None:
            endpoint = await self.endpoint()
            live = [d for d in endpoint["deployments"] if d["id"] == endpoint["live_deployment_id"]]
            others = [
                d for d in endpoint["deployments"] if d["id"] != endpoint["live_deployment_id"]
            ]
            if (
                live
                and live[0]["model_version_id"] == version_id
                and live[0]["state"] == "healthy"
                and all(d["state"] in ("retired", "failed") for d in others)
            ):
                return live[0]
            if failed := [
                d
                for d in endpoint["deployments"]
                if d["model_version_id"] == version_id and d["state"] == "failed"
            ]:
                raise RuntimeError(
                    f"the deployment of {version_id} failed: {failed[0]['state_reason']}"
                )
            return None

        return await _until(switched, every=0.5)

    async def running_on_ray(self, version_id: str) -> bool:
        """Serve runs an application of the version, every deployment of it ready."""
        applications = (await self.ray.get(APPLICATIONS_PATH)).json().get("applications") or {}
        for app in applications.values():
            labels = ((app.get("deployed_app_config") or {}).get("args") or {}).get("labels") or {}
            if labels.get(MODEL_VERSION_ID_LABEL) == version_id and app.get("status") == "RUNNING":
                return True
        return False


async def promotions(serving: Serving, nats_url: str, version_ids: list[str]) -> dict:
    """Each promotion: seconds until Serve runs the version, and until DeploymentHealthy of it
    reaches a subscriber on the bus."""
    healthy_at: dict[str, float] = {}
    bus = await nats.connect(nats_url)

    async def on_healthy(message) -> None:
        data = json.loads(message.data)["data"]
        if data["endpoint_id"] == serving.endpoint_id:
            healthy_at.setdefault(data["model_version_id"], time.monotonic())

    await bus.subscribe("serving.deployment.healthy", cb=on_healthy)
    await bus.flush()
    on_ray, on_bus = [], []
    try:
        for version_id in version_ids:
            started = time.monotonic()
            await serving.promote(version_id)

            async def ray_running(version_id: str = version_id) -> bool:
                return await serving.running_on_ray(version_id)

            await _until(ray_running, every=0.1)
            on_ray.append(time.monotonic() - started)

            async def event_seen(version_id: str = version_id) -> bool:
                return version_id in healthy_at

            await _until(event_seen, every=0.05)
            on_bus.append(healthy_at[version_id] - started)
            await serving.wait_live(version_id)
            log.info(
                "promotion %d: running on Ray Serve after %.2f s, DeploymentHealthy after %.2f s",
                len(on_ray),
                on_ray[-1],
                on_bus[-1],
            )
    finally:
        await bus.close()
    return {"ray_serve_running_s": _seconds(on_ray), "deployment_healthy_event_s": _seconds(on_bus)}


def _seconds(values: list[float]) -> dict:
    return {
        "p50": round(percentile(values, 50), 2),
        "max": round(max(values), 2),
        "each": [round(v, 2) for v in values],
    }


async def predictions(serving: Serving, config: Config, live: dict, token: str) -> list[dict]:
    """The same request through the gateway and straight to Serve's proxy, in turn, per
    client count."""
    gateway = PredictTarget(
        "gateway",
        serving.platform.gateway_url,
        f"/api/v1/serving/endpoints/{serving.endpoint_id}/predict",
        {"Authorization": f"Bearer {token}"},
    )
    direct = PredictTarget(
        "ray_serve", serving.platform.ray.proxy_url, f"/{live['framework_resource_id']}", {}
    )
    rows = []
    for clients in config.clients:
        row: dict = {"clients": clients}
        for target in (direct, gateway):
            result: Result = await run_load(
                target, "predict", clients, config.warmup_seconds, config.seconds
            )
            row[target.name] = result.summary()
            if result.first_error:
                log.warning("%s x%d: first error: %s", target.name, clients, result.first_error)
            log.info("%-10s predict x%-3d %s", target.name, clients, row[target.name])
        gw, ray = row["gateway"], row["ray_serve"]
        row["added_p50_ms"] = round(gw["p50_ms"] - ray["p50_ms"], 2)
        row["ops_ratio"] = (
            round(gw["ops_per_s"] / ray["ops_per_s"], 3) if ray["ops_per_s"] else None
        )
        rows.append(row)
    return rows


def memory(platform: Platform) -> dict:
    """Resident memory, MiB: the services, the MLflow tracking server, and the Ray head with
    everything it started (its Serve controller, proxy and the endpoint's replica)."""
    tracking = [pid for name, pid in platform.infra_pids.items() if name == "mlflow"]
    ray = [platform.ray.process.pid] if platform.ray and platform.ray.process else []
    return {
        "services_idle": round(tree_rss_mib(platform.pids.values()), 1),
        "tracking_idle": round(tree_rss_mib(tracking), 1),
        "ray_idle": round(tree_rss_mib(ray), 1),
    }


def table(results: dict) -> str:
    lines = [
        (
            f"{'predict':<10}{'clients':>8} | {'Ray ops/s':>10}{'p50 ms':>8}{'p99 ms':>8}{'err':>5} | "
            f"{'GW ops/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'err':>5} | {'+p50 ms':>8}{'ratio':>7}"
        )
    ]
    lines.append("-" * len(lines[0]))
    for row in results["predictions"]:
        ray, gw = row["ray_serve"], row["gateway"]
        lines.append(
            f"{'':<10}{row['clients']:>8} | {ray['ops_per_s']:>10}{ray['p50_ms']:>8}{ray['p99_ms']:>8}"
            f"{ray['errors']:>5} | {gw['ops_per_s']:>9}{gw['p50_ms']:>8}{gw['p99_ms']:>8}{gw['errors']:>5} | "
            f"{row['added_p50_ms']:>8}{row['ops_ratio']:>7}"
        )
    promoted = results["promotions"]
    mem = results["memory_mib"]
    lines += [
        "",
        (
            f"promotion -> running on Ray Serve: p50 {promoted['ray_serve_running_s']['p50']} s "
            f"(each {promoted['ray_serve_running_s']['each']})"
        ),
        (
            f"promotion -> DeploymentHealthy on the bus: p50 {promoted['deployment_healthy_event_s']['p50']} s "
            f"(each {promoted['deployment_healthy_event_s']['each']})"
        ),
        (
            f"memory MiB, idle: services {mem['services_idle']}, MLflow tracking server {mem['tracking_idle']}, "
            f"Ray head {mem['ray_idle']}"
        ),
    ]
    lines += report.target_lines(results.get("targets"), issue=35)
    return "\n".join(lines)


async def run(config: Config, postgres_url: str, nats_url: str) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="bench_serving_logs_"))
    database_name = f"modelplane_bench_serving_{uuid.uuid4().hex[:8]}"
    database_url = await create_database(postgres_url, database_name)
    platform = Platform(
        database_url=database_url, nats_url=nats_url, log_dir=log_dir, start_ray=True
    )
    results: dict = {}
    try:
        await platform.start()
        assert platform.ray is not None
        log.info(
            "platform at %s; Ray dashboard %s; logs in %s",
            platform.gateway_url,
            platform.ray.dashboard_url,
            log_dir,
        )
        await _ray_up(platform.ray.dashboard_url)
        token = platform.admin_token or ""
        artifact_uri = await asyncio.to_thread(
            log_model, platform.tracking_uri, Path(tempfile.mkdtemp(prefix="bench_model_"))
        )
        async with (
            httpx.AsyncClient(
                base_url=platform.gateway_url,
                timeout=60,
                headers={"Authorization": f"Bearer {token}"},
            ) as client,
            httpx.AsyncClient(base_url=platform.ray.dashboard_url, timeout=30) as ray,
        ):
            serving = Serving(platform, client, ray)
            version_ids = await serving.set_up(artifact_uri, PROMOTIONS + 1)
            live = await serving.wait_live(version_ids[0])
            await asyncio.sleep(2)
            results["memory_mib"] = memory(platform)
            results["predictions"] = await predictions(serving, config, live, token)
            results["promotions"] = await promotions(serving, nats_url, version_ids[1:])
    finally:
        await platform.stop()
        await drop_database(postgres_url, database_name)
        await drop_database(postgres_url, f"{database_name}_mlflow")
    results["targets"] = [check.as_json() for check in targets.serving_checks(results)]
    print()
    print(table(results))
    return report.written(results, "serving")
