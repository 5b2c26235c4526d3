"""Experiment tracking through MLflow: one MLflow run per training job.

The job's process logs to its run itself (`mlflow.log_metric` and friends), told which run by
the environment from `env_for_run`; the service creates, ends and reads runs here. The local
default is a SQLite store (`sqlite:///...`), production an MLflow tracking server.
"""

import asyncio
from typing import Literal, NamedTuple, get_args
from urllib.parse import quote

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

TerminalRunStatus = Literal["FINISHED", "FAILED", "KILLED"]


class RunSnapshot(NamedTuple):
    metrics: dict[str, float]  # the latest value of each metric
    params: dict[str, str]
    artifact_uri: str
    status: str  # MLflow's: RUNNING, SCHEDULED, FINISHED, FAILED, KILLED


class MlflowTracking:
    def __init__(self, tracking_uri: str, artifact_root: str | None = None) -> None:
        """`artifact_root`: where new experiments keep artifacts; None leaves it to the server."""
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root.rstrip("/") if artifact_root else None
        self._client = MlflowClient(tracking_uri)

    async def create_run(
        self,
        experiment_name: str,
        run_name: str,
        params: dict[str, object] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        return await asyncio.to_thread(self._create_run, experiment_name, run_name, params or {}, tags or {})

    def env_for_run(self, run_id: str) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_RUN_ID": run_id}

    async def finish(self, run_id: str, status: TerminalRunStatus) -> None:
        if status not in get_args(TerminalRunStatus):
            raise ValueError(f"not a terminal run status: {status!r}")
        await asyncio.to_thread(self._client.set_terminated, run_id, status)

    async def read_run(self, run_id: str) -> RunSnapshot:
        run = await asyncio.to_thread(self._client.get_run, run_id)
        return RunSnapshot(
            metrics=dict(run.data.metrics),
            params=dict(run.data.params),
            artifact_uri=run.info.artifact_uri,
            status=run.info.status,
        )

    def _create_run(
        self, experiment_name: str, run_name: str, params: dict[str, object], tags: dict[str, str]
    ) -> str:
        experiment_id = self._experiment_id(experiment_name)
        run = self._client.create_run(experiment_id, run_name=run_name, tags=tags)
        for key, value in params.items():
            self._client.log_param(run.info.run_id, key, value)
        return run.info.run_id

    def _experiment_id(self, name: str) -> str:
        experiment = self._client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = f"{self.artifact_root}/{quote(name, safe='')}" if self.artifact_root else None
        try:
            return self._client.create_experiment(name, artifact_location=location)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            # Another job created it between our lookup and create.
            return self._client.get_experiment_by_name(name).experiment_id
