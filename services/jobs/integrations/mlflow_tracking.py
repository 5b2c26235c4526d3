"""Experiment tracking through MLflow: one MLflow run per training job.

The job's process logs to its run itself (`mlflow.log_metric` and friends), told which run by
the environment from `env_for_run`; the service creates, ends and reads runs here. The tracking
URI is an MLflow tracking server's (`make up` starts one): a job then needs only the MLflow
client. A `sqlite:///` store serves the service run alone, and only jobs with SQLAlchemy.
"""

import asyncio
import math
from functools import cached_property
from typing import TYPE_CHECKING, Literal, NamedTuple, get_args
from urllib.parse import quote

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TerminalRunStatus = Literal["FINISHED", "FAILED", "KILLED"]
# How many artifact paths a run's snapshot lists; a run that logs more keeps the first ones.
MAX_LISTED_ARTIFACTS = 200


class RunSnapshot(NamedTuple):
    metrics: dict[str, float]  # the latest finite value of each metric
    params: dict[str, str]
    artifact_uri: str
    status: str  # MLflow's: RUNNING, SCHEDULED, FINISHED, FAILED, KILLED
    artifacts: list[str]  # the files logged, as paths under artifact_uri


class MlflowTracking:
    def __init__(self, tracking_uri: str, artifact_root: str | None = None) -> None:
        """`artifact_root`: where new experiments keep artifacts; None leaves it to the server."""
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root.rstrip("/") if artifact_root else None
        # Experiment name -> id, as looked up or created: a job start asks the server only for
        # its run. An experiment deleted in MLflow since is looked up again (`_in_experiment`).
        self._experiments: dict[str, str] = {}

    @cached_property
    def _client(self) -> "MlflowClient":
        """Made at the first call, in a worker thread: MLflow's import is 150 MB and a second of
        CPU that a service with no job to track need not hold."""
        from mlflow.tracking import MlflowClient

        return MlflowClient(self.tracking_uri)

    async def create_run(
        self,
        experiment_name: str,
        run_name: str,
        params: dict[str, object] | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        return await asyncio.to_thread(
            self._create_run, experiment_name, run_name, params or {}, tags or {}
        )

    async def find_or_create_run(
        self,
        experiment_name: str,
        run_name: str,
        *,
        params: dict[str, object],
        tags: dict[str, str],
        identified_by: str,
        first_attempt: bool = False,
    ) -> str:
        """The run whose tag `identified_by` has the value `tags` gives it, created if none
        has: asking again after a crash finds the run instead of making a second. A
        `first_attempt` cannot have made one: it skips the search (a hand-off's slowest call)."""
        if first_attempt:
            return await self.create_run(experiment_name, run_name, params, tags)
        return await asyncio.to_thread(
            self._find_or_create_run, experiment_name, run_name, params, tags, identified_by
        )

    def _find_or_create_run(
        self,
        experiment_name: str,
        run_name: str,
        params: dict[str, object],
        tags: dict[str, str],
        identified_by: str,
    ) -> str:
        def find_or_create(experiment_id: str) -> str:
            found = self._client.search_runs(
                [experiment_id],
                f"tags.`{identified_by}` = '{tags[identified_by]}'",
                max_results=1,
            )
            if found:
                return found[0].info.run_id
            return self._create_in(experiment_id, run_name, params, tags)

        return self._in_experiment(experiment_name, find_or_create)

    def env_for_run(self, run_id: str) -> dict[str, str]:
        return {"MLFLOW_TRACKING_URI": self.tracking_uri, "MLFLOW_RUN_ID": run_id}

    async def finish(self, run_id: str, status: TerminalRunStatus) -> None:
        if status not in get_args(TerminalRunStatus):
            raise ValueError(f"not a terminal run status: {status!r}")
        await asyncio.to_thread(lambda: self._client.set_terminated(run_id, status))

    async def read_run(self, run_id: str) -> RunSnapshot:
        return await asyncio.to_thread(self._read_run, run_id)

    def _read_run(self, run_id: str) -> RunSnapshot:
        run = self._client.get_run(run_id)
        return RunSnapshot(
            # MLflow keeps NaN and infinite values; JSON, and so Postgres, has no such number.
            metrics={k: v for k, v in run.data.metrics.items() if math.isfinite(v)},
            params=dict(run.data.params),
            artifact_uri=run.info.artifact_uri,
            status=run.info.status,
            artifacts=self._artifact_files(run_id),
        )

    def _artifact_files(self, run_id: str) -> list[str]:
        files: list[str] = []
        folders: list[str | None] = [None]
        while folders and len(files) < MAX_LISTED_ARTIFACTS:
            for entry in self._client.list_artifacts(run_id, folders.pop()):
                if entry.is_dir:
                    folders.append(entry.path)
                else:
                    files.append(entry.path)
        return sorted(files[:MAX_LISTED_ARTIFACTS])

    def _create_run(
        self, experiment_name: str, run_name: str, params: dict[str, object], tags: dict[str, str]
    ) -> str:
        return self._in_experiment(
            experiment_name,
            lambda experiment_id: self._create_in(experiment_id, run_name, params, tags),
        )

    def _create_in(
        self, experiment_id: str, run_name: str, params: dict[str, object], tags: dict[str, str]
    ) -> str:
        from mlflow.entities import Param

        run = self._client.create_run(experiment_id, run_name=run_name, tags=tags)
        if params:  # one request for them all
            logged = [Param(key, str(value)) for key, value in params.items()]
            self._client.log_batch(run.info.run_id, params=logged)
        return run.info.run_id

    def _in_experiment(self, name: str, act):
        """`act(experiment id)`; when the id was remembered and MLflow refuses it (the
        experiment was deleted), once more with the id looked up afresh."""
        from mlflow.exceptions import MlflowException

        remembered = name in self._experiments
        try:
            return act(self._experiment_id(name))
        except MlflowException:
            if not remembered:
                raise
            self._experiments.pop(name, None)
            return act(self._experiment_id(name))

    def _experiment_id(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        self._experiments[name] = experiment_id = self._look_up_or_create(name)
        return experiment_id

    def _look_up_or_create(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

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
            experiment = self._client.get_experiment_by_name(name)
            if experiment is None:  # and it was deleted since
                raise
            return experiment.experiment_id
