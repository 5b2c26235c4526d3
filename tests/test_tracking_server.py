"""The MLflow tracking server the platform runs beside the services: the services are told its
URI, the ordinary MLflow client logs a metric and an artifact through it, it stops with them."""

import os
from pathlib import Path

import httpx
import mlflow
import pytest
from sqlalchemy.engine import make_url

from deploy.launcher import Platform
from shared.local_infra import drop_database
from shared.service_table import ServiceSpec

DUMMY = ServiceSpec("alpha", 8101, ("/api/v1/alpha",), module_name="tests.dummy_service")


def platform(database_url: str, nats_url: str, tmp_path: Path, **kwargs: object) -> Platform:
    return Platform(
        table=(DUMMY,),
        database_url=database_url,
        nats_url=nats_url,
        state_dir=tmp_path / "state",
        log_dir=tmp_path / "logs",
        tracking_workers=1,
        **kwargs,  # type: ignore[arg-type]
    )


async def told(running: Platform) -> str:
    async with httpx.AsyncClient(timeout=5) as client:
        reply = await client.get(f"{running.service_url('alpha')}/api/v1/alpha")
    return reply.json()["env"].get("MODELPLANE_MLFLOW_TRACKING_URI")


@pytest.mark.timeout(300)
async def test_the_platform_runs_an_mlflow_server_its_services_log_to(
    database_server_url: str, database_url: str, nats_url: str, tmp_path: Path
) -> None:
    try:
        async with platform(database_url, nats_url, tmp_path) as running:
            uri = running.tracking_uri
            assert uri is not None and uri.startswith("http://127.0.0.1:")
            assert await told(running) == uri
            client = mlflow.MlflowClient(tracking_uri=uri)
            experiment = client.create_experiment("launcher-probe")
            run = client.create_run(experiment)
            client.log_metric(run.info.run_id, "auc", 0.91)
            (tmp_path / "model.txt").write_text("weights")
            client.log_artifact(run.info.run_id, str(tmp_path / "model.txt"))
            logged = client.get_run(run.info.run_id)
            artifacts = [a.path for a in client.list_artifacts(run.info.run_id)]
            server_pid = running.infra_pids["mlflow"]
        assert logged.data.metrics == {"auc": 0.91}
        assert artifacts == ["model.txt"]
        # Served by the server: stored under the platform's data directory, not the client's.
        stored = list((tmp_path / "state" / "mlflow" / "artifacts").rglob("model.txt"))
        assert [p.read_text() for p in stored] == ["weights"]
        with pytest.raises(ProcessLookupError):
            os.kill(server_pid, 0)
    finally:
        await drop_database(database_server_url, f"{make_url(database_url).database}_mlflow")


async def test_a_tracking_uri_of_the_users_starts_no_server(
    database_url: str, nats_url: str, tmp_path: Path
) -> None:
    theirs = "http://mlflow.example.internal:5000"
    async with platform(database_url, nats_url, tmp_path, tracking_uri=theirs) as running:
        assert "mlflow" not in running.infra_pids
        assert await told(running) == theirs
