"""The serving service on the platform as `make up` runs it, reached through the gateway, with a
real local Ray head: models logged to the platform's MLflow tracking server, registered as
versions, served on Ray Serve, rolled out on promotion and rolled back when one cannot load."""

import asyncio
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import mlflow.pyfunc
import pytest
from mlflow.tracking import MlflowClient

from deploy.launcher import Platform
from shared.local_infra import create_database, drop_database
from tests.bus import stream_events
from tests.e2e.clients import new_project, token_for
from tests.ray_head import ray_head as ray_head_for
from tests.serving.test_service import until

# Ray's head, the platform, and each Serve application's replica start on a loaded two-core
# machine: minutes each.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

MODEL_CODE = """
import mlflow
from mlflow.pyfunc import PythonModel


class Scale(PythonModel):
    def predict(self, context, model_input, params=None):
        return [{factor} * float(x) for x in model_input["x"]]


mlflow.models.set_model(Scale())
"""
# How long a Serve application may take to come up, and how often the test looks.
SLOW = {"timeout": 600, "every": 1.0}
REQUEST = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}


@pytest.fixture(scope="module")
def ray_head():
    """As `make up` starts one: a CPU to schedule, a small object store."""
    with ray_head_for("e2e", object_store_bytes=80 * 1024 * 1024) as head:
        yield head


@pytest.fixture(scope="module")
async def platform(
    database_server_url, nats_url, tmp_path_factory, ray_head
) -> AsyncIterator[Platform]:
    """The conftest's platform, told where the Ray head is (as for a cluster of the user's)."""
    name = f"modelplane_e2e_{secrets.token_hex(6)}"
    database_url = await create_database(database_server_url, name)
    try:
        async with Platform(
            database_url=database_url,
            nats_url=nats_url,
            log_dir=Path(tempfile.mkdtemp(prefix="serving-e2e-logs-")),
            state_dir=tmp_path_factory.mktemp("state"),
            tracking_workers=1,
            ready_timeout=240,
            env={
                "MODELPLANE_JOBS_RUN_AS": "",
                "MODELPLANE_RAY_DASHBOARD_URL": ray_head.dashboard_url,
                "MODELPLANE_RAY_SERVE_URL": ray_head.proxy_url,
            },
        ) as running:
            yield running
    finally:
        await drop_database(database_server_url, name)
        await drop_database(database_server_url, f"{name}_mlflow")


def log_model(tracking_uri: str, root: Path, name: str, factor: float | None) -> str:
    """A model saved as MLflow writes it and logged to a run on the platform's tracking server;
    its artifact URI there. `factor=None` logs one whose loader module does not exist."""
    path = root / name
    if factor is None:
        path.mkdir(parents=True)
        (path / "MLmodel").write_text(
            "flavors: {python_function: {loader_module: no_such_module}}\n"
        )
    else:
        code = root / f"{name}.py"
        code.write_text(MODEL_CODE.format(factor=factor))
        mlflow.pyfunc.save_model(path=str(path), python_model=str(code))
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # mlflow-artifacts: URIs resolve against it
    try:
        client = MlflowClient(tracking_uri)
        run = client.create_run(client.get_experiment_by_name("Default").experiment_id)
        client.log_artifacts(run.info.run_id, str(path), "model")
        client.set_terminated(run.info.run_id)
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
    return f"{run.info.artifact_uri}/model"


async def test_serving_is_forwarded_documented_and_ready(platform, admin):
    viewer = await token_for(admin, "sam", "viewer")
    r = await admin.get("/api/v1/serving/endpoints", headers=viewer)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []
    async with httpx.AsyncClient(base_url=platform.gateway_url) as anonymous:
        assert (await anonymous.get("/api/v1/serving/endpoints")).status_code == 401
        ready = (await anonymous.get("/readyz")).json()
        spec = (await anonymous.get("/api/v1/openapi.json")).json()
    assert ready["checks"]["serving"] is True
    assert "/api/v1/serving/endpoints/{endpoint_id}/predict" in spec["paths"]


async def test_promotions_roll_out_on_ray_serve_and_a_broken_version_rolls_back(
    platform, admin, bus, tmp_path
):
    editor = await token_for(admin, "eddie", "editor")
    viewer = await token_for(admin, "vera", "viewer")
    project = await new_project(admin)
    uris = [
        await asyncio.to_thread(log_model, platform.tracking_uri, tmp_path, name, factor)
        for name, factor in (("double", 2), ("triple", 3), ("broken", None))
    ]
    assert all(uri.startswith("mlflow-artifacts:/") for uri in uris)
    model = (
        await admin.post(
            "/api/v1/registry/models",
            headers=editor,
            json={"name": "scaler", "project_id": project},
        )
    ).json()
    v1, v2, v3 = [
        (
            await admin.post(
                f"/api/v1/registry/models/{model['id']}/versions",
                headers=editor,
                json={"artifact_uri": uri},
            )
        ).json()
        for uri in uris
    ]

    async def promote(version: dict) -> None:
        r = await admin.post(
            f"/api/v1/registry/models/versions/{version['id']}/transition",
            json={"stage": "production"},
        )
        assert r.status_code == 200, r.text

    async def endpoint(endpoint_id: str) -> dict:
        r = await admin.get(f"/api/v1/serving/endpoints/{endpoint_id}", headers=viewer)
        assert r.status_code == 200, r.text
        return r.json()

    async def live_version(endpoint_id: str) -> str | None:
        """The version the endpoint's traffic goes to, once that deployment is healthy."""
        found = await endpoint(endpoint_id)
        live = [d for d in found["deployments"] if d["id"] == found["live_deployment_id"]]
        return live[0]["model_version_id"] if live and live[0]["state"] == "healthy" else None

    async def predict(endpoint_id: str) -> httpx.Response:
        return await admin.post(
            f"/api/v1/serving/endpoints/{endpoint_id}/predict", headers=viewer, json=REQUEST
        )

    await promote(v1)
    body = {
        "project_id": project,
        "model_id": model["id"],
        "env": "dev",
        "deployment": {"resource_requests": {"cpu": "100m"}},
    }
    refused = await admin.post(
        "/api/v1/serving/endpoints",
        headers=viewer,
        json={**body, "name": "scaler", "follow_stage": "production"},
    )
    assert refused.status_code == 403
    following = await admin.post(
        "/api/v1/serving/endpoints",
        headers=editor,
        json={**body, "name": "scaler", "follow_stage": "production"},
    )

    async def create_pinned() -> httpx.Response | None:
        """The version reaches the serving service as an event: a moment after it was created."""
        r = await admin.post(
            "/api/v1/serving/endpoints",
            headers=editor,
            json={**body, "name": "scaler-pinned", "model_version_id": v2["id"]},
        )
        known = r.status_code != 422 or "version-known" not in [
            v["rule"] for v in r.json()["violations"]
        ]
        return r if known else None

    pinned = await until(create_pinned, timeout=60, every=0.5)
    assert following.status_code == 201, following.text
    assert pinned is not None and pinned.status_code == 201, pinned and pinned.text
    following, pinned = following.json()["id"], pinned.json()["id"]

    # Deployed, healthy, answering through the gateway; two endpoints side by side.
    assert await until(lambda: live_version(following), **SLOW) == v1["id"], await endpoint(
        following
    )
    assert await until(lambda: live_version(pinned), **SLOW) == v2["id"], await endpoint(pinned)
    first = await predict(following)
    assert (first.status_code, first.json()) == (200, {"predictions": [2.0, 4.0]})
    assert (await predict(pinned)).json() == {"predictions": [3.0, 6.0]}

    # Promoting v2 rolls it out while a client keeps predicting: not one prediction fails.
    answers: list[tuple[int, object]] = []
    switching = True

    async def keep_predicting() -> None:
        while switching:
            r = await predict(following)
            answers.append((r.status_code, r.json()))

    predicting = asyncio.create_task(keep_predicting())
    try:
        await promote(v2)
        assert await until(lambda: _is(live_version(following), v2["id"]), **SLOW), await endpoint(
            following
        )
        await until(lambda: _retired_all_but_live(endpoint(following)), timeout=120)
        await asyncio.sleep(1)
    finally:
        switching = False
        await predicting
    assert {status for status, _ in answers} == {200}, [a for a in answers if a[0] != 200][:3]
    assert {"predictions": [2.0, 4.0]} in [body for _, body in answers]
    assert answers[-1][1] == {"predictions": [3.0, 6.0]}
    rolled_out = await endpoint(following)
    assert [d["state"] for d in rolled_out["deployments"]] == ["retired", "healthy"]

    # The registry shows where v2 serves: both endpoints.
    async def v2_serving() -> list:
        detail = (await admin.get(f"/api/v1/registry/models/{model['id']}", headers=viewer)).json()
        [version] = [v for v in detail["versions"] if v["id"] == v2["id"]]
        return sorted((s["endpoint_name"], s["state"]) for s in version["serving"])

    assert await until(
        lambda: _is(v2_serving(), [("scaler", "healthy"), ("scaler-pinned", "healthy")]), timeout=30
    )

    # A version whose artifact cannot load fails; the endpoint keeps answering with v2.
    await promote(v3)

    async def broken_deployment() -> dict | None:
        found = [
            d
            for d in (await endpoint(following))["deployments"]
            if d["model_version_id"] == v3["id"]
        ]
        return found[0] if found and found[0]["state"] in ("failed", "retired") else None

    broken = await until(broken_deployment, **SLOW)
    assert broken is not None and broken["state_reason"], await endpoint(following)
    after = await endpoint(following)
    assert after["live_deployment_id"] == rolled_out["live_deployment_id"]
    assert (await predict(following)).json() == {"predictions": [3.0, 6.0]}
    assert (await predict(pinned)).json() == {"predictions": [3.0, 6.0]}
    rolled_back = [
        e
        for e in await stream_events(bus, "SERVING", "serving.deployment.rolled_back")
        if e.data["endpoint_id"] == following
    ]
    assert [
        (e.data["failed_model_version_id"], e.data["serving_model_version_id"]) for e in rolled_back
    ] == [(v3["id"], v2["id"])]
    healthy = [
        e.data["model_version_id"]
        for e in await stream_events(bus, "SERVING", "serving.deployment.healthy")
        if e.data["endpoint_id"] == following
    ]
    assert list(dict.fromkeys(healthy)) == [v1["id"], v2["id"]]  # the broken one never was


async def _is(value, expected) -> bool:
    return await value == expected


async def _retired_all_but_live(found) -> bool:
    endpoint = await found
    return all(
        d["state"] == "retired"
        for d in endpoint["deployments"]
        if d["id"] != endpoint["live_deployment_id"]
    )
