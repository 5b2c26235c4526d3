"""Ray Serve for real: a local Ray head (one module-scoped fixture, few CPUs, stopped after),
MLflow pyfunc models saved to local directories, deployed through the dashboard's REST API."""

import asyncio
import json
import time
from pathlib import Path

import httpx
import mlflow.pyfunc
import pytest

from services.serving.domain import DeploymentSpec, Health, Resources, ScalingTarget
from services.serving.integrations.backend import DeploymentTarget
from services.serving.integrations.ray_serve import (
    APPLICATIONS_PATH,
    RayServeBackend,
    RayServeConfig,
    application_config,
    health_of,
)
from tests.ray_head import ray_head as ray_head_for

pytestmark = pytest.mark.timeout(900)

MODEL_CODE = """
import mlflow
from mlflow.pyfunc import PythonModel


class Scale(PythonModel):
    def predict(self, context, model_input, params=None):
        if "x" not in model_input:
            raise ValueError("column x is required")
        return [{factor} * float(x) for x in model_input["x"]]


mlflow.models.set_model(Scale())
"""
READY_WITHIN_SECONDS = 420


def save_model(root: Path, name: str, factor: float) -> str:
    """A model version's artifacts, as MLflow writes them; its artifact URI."""
    code = root / f"{name}.py"
    code.write_text(MODEL_CODE.format(factor=factor))
    mlflow.pyfunc.save_model(path=str(root / name), python_model=str(code))
    return (root / name).as_uri()


@pytest.fixture(scope="module")
def ray_head():
    with ray_head_for("serving") as head:
        yield head


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    broken = root / "broken"
    broken.mkdir()
    (broken / "MLmodel").write_text("flavors: {python_function: {loader_module: no_such_module}}\n")
    return {
        "double": save_model(root, "double", 2),
        "triple": save_model(root, "triple", 3),
        "broken": broken.as_uri(),
    }


@pytest.fixture
async def backend(ray_head):
    backend = RayServeBackend(
        RayServeConfig(dashboard_url=ray_head.dashboard_url, proxy_url=ray_head.proxy_url)
    )
    yield backend
    await backend.close()


def target(name: str, uri: str) -> DeploymentTarget:
    return DeploymentTarget(
        resource_id=name,
        namespace="default",
        model_uri=uri,
        spec=DeploymentSpec(resource_requests=Resources(cpu="100m")),
    )


async def until(backend, name: str, *healths: Health):
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    while True:
        status = await backend.status(name, "default")
        if status.observation.health in healths or time.monotonic() > deadline:
            return status
        await asyncio.sleep(2)


def body(*xs: float) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["x"], "data": [[x] for x in xs]}}).encode()


async def test_deployed_models_become_healthy_coexist_and_answer(backend, models):
    await backend.deploy(target("double-0001", models["double"]))
    await backend.deploy(target("triple-0001", models["triple"]))

    doubled = await until(backend, "double-0001", Health.READY, Health.FAILED)
    tripled = await until(backend, "triple-0001", Health.READY, Health.FAILED)

    assert doubled.observation.health == Health.READY, doubled
    assert tripled.observation.health == Health.READY, tripled
    assert doubled.framework_status["status"] == "RUNNING"
    first = await backend.predict("double-0001", "default", body(1, 2.5))
    second = await backend.predict("triple-0001", "default", body(2))
    assert (first.status_code, json.loads(first.body)) == (200, {"predictions": [2.0, 5.0]})
    assert (second.status_code, json.loads(second.body)) == (200, {"predictions": [6.0]})


async def test_the_model_refusing_its_input_is_a_422_with_its_reason(backend):
    refused = await backend.predict(
        "double-0001", "default", json.dumps({"dataframe_records": [{"y": 1}]}).encode()
    )
    malformed = await backend.predict("double-0001", "default", b'{"rows": []}')

    assert refused.status_code == 422
    assert "column x is required" in json.loads(refused.body)["message"]
    assert malformed.status_code == 400


async def test_a_version_whose_artifact_cannot_load_fails_and_the_others_keep_serving(
    backend, models
):
    await backend.deploy(target("broken-0001", models["broken"]))

    broken = await until(backend, "broken-0001", Health.FAILED, Health.READY)

    assert broken.observation.health == Health.FAILED, broken
    assert broken.observation.message
    still = await backend.predict("double-0001", "default", body(4))
    assert json.loads(still.body) == {"predictions": [8.0]}


async def test_retiring_one_application_keeps_every_other(backend, ray_head):
    await backend.retire("broken-0001", "default")
    await backend.retire("triple-0001", "default")

    async with httpx.AsyncClient(base_url=ray_head.dashboard_url) as client:
        applications = (await client.get(APPLICATIONS_PATH)).json()["applications"]
    gone = await until(backend, "triple-0001", Health.MISSING)
    still = await backend.predict("double-0001", "default", body(1))

    assert "double-0001" in applications
    assert gone.observation.health == Health.MISSING
    assert json.loads(still.body) == {"predictions": [2.0]}


async def test_an_unreachable_dashboard_is_an_observation():
    backend = RayServeBackend(
        RayServeConfig(dashboard_url="http://127.0.0.1:9", request_timeout_seconds=2)
    )
    try:
        status = await backend.status("double-0001", "default")
    finally:
        await backend.close()

    assert status.observation.health == Health.UNREACHABLE


def test_the_application_config_carries_replicas_autoscaling_and_resources():
    spec = DeploymentSpec(
        min_replicas=1,
        max_replicas=3,
        replica_count=2,
        autoscaling_metrics=(ScalingTarget("concurrency", 5),),
        resource_requests=Resources(cpu="500m", memory="1Gi"),
        resource_limits=Resources(gpus=1),
        gpu_type="a100-80gb",
    )
    config = application_config(
        DeploymentTarget("churn-1a2b3c4d", "default", "s3://m/1", spec), RayServeConfig()
    )

    assert config["name"] == "churn-1a2b3c4d"
    assert config["route_prefix"] == "/churn-1a2b3c4d"
    assert config["args"]["model_uri"] == "s3://m/1"
    deployment = config["deployments"][0]
    assert deployment["ray_actor_options"] == {"num_cpus": 0.5, "memory": 2**30, "num_gpus": 1}
    assert deployment["autoscaling_config"] == {
        "min_replicas": 1,
        "max_replicas": 3,
        "initial_replicas": 2,
        "target_ongoing_requests": 5,
    }


def test_replicas_resolve_artifact_uris_against_the_tracking_server():
    target = DeploymentTarget(
        "a-1", "default", "mlflow-artifacts:/1/r/artifacts/model", DeploymentSpec()
    )

    with_server = application_config(target, RayServeConfig(tracking_uri="http://127.0.0.1:5000"))
    without = application_config(target, RayServeConfig())

    assert with_server["runtime_env"] == {
        "env_vars": {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    }
    assert "runtime_env" not in without


def test_a_fixed_size_deployment_has_a_replica_count():
    config = application_config(
        DeploymentTarget(
            "a-1", "default", "s3://m/1", DeploymentSpec(min_replicas=2, max_replicas=2)
        ),
        RayServeConfig(replica_cpus=0.25),
    )

    assert config["deployments"][0]["num_replicas"] == 2
    assert config["deployments"][0]["ray_actor_options"] == {"num_cpus": 0.25}


@pytest.mark.parametrize(
    ("app", "health"),
    [
        (None, Health.MISSING),
        ({"status": "DELETING", "deployments": {}}, Health.MISSING),
        (
            {"status": "DEPLOYING", "deployments": {"ModelServer": {"status": "UPDATING"}}},
            Health.NOT_READY,
        ),
        (
            {"status": "RUNNING", "deployments": {"ModelServer": {"status": "HEALTHY"}}},
            Health.READY,
        ),
        (
            {"status": "RUNNING", "deployments": {"ModelServer": {"status": "UPSCALING"}}},
            Health.READY,
        ),
        (
            {"status": "UNHEALTHY", "deployments": {"ModelServer": {"status": "UNHEALTHY"}}},
            Health.NOT_READY,
        ),
        (
            {
                "status": "DEPLOY_FAILED",
                "deployments": {"ModelServer": {"status": "DEPLOY_FAILED", "message": "boom"}},
            },
            Health.FAILED,
        ),
    ],
)
def test_serve_statuses_map_to_health(app, health):
    assert health_of(app).health == health
