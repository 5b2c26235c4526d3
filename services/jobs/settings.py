"""The jobs service's configuration (`MODELPLANE_*` environment variables)."""

import os
from pathlib import Path

from pydantic import Field

from shared.environments import Env
from shared.integrations import TrainingBackend
from shared.settings import ServiceSettings


class JobsSettings(ServiceSettings):
    jobs_host: str = "127.0.0.1"
    jobs_port: int = 8002
    # Where the local executor keeps each job's directory, and the default MLflow store lives.
    jobs_state_dir: Path = Path(".modelplane/jobs")
    # Each env's executor while the gateway has no IntegrationConfig for it; unnamed envs run
    # locally. E.g. MODELPLANE_JOBS_EXECUTORS='{"prod": "kubernetes"}'.
    jobs_executors: dict[Env, TrainingBackend] = Field(default_factory=dict)
    # The MLflow tracking server (`http://...`) the service and its jobs use: the one `make up`
    # starts, or production's. Empty: `sqlite:///<jobs_state_dir>/mlflow.db`, for the service
    # run alone, whose jobs then need MLflow with SQLAlchemy and write access to that file.
    mlflow_tracking_uri: str = ""
    # The user local jobs run as when the service runs as root; empty: root, as the service.
    jobs_run_as: str = "nobody"
    # How often the watcher asks the executor about running jobs.
    jobs_watch_seconds: float = 0.5
    # How many jobs one watcher round starts or settles at once.
    jobs_watch_concurrency: int = Field(default=8, ge=1)
    # How long a start may take before the watcher takes the job up again (the starter crashed).
    jobs_start_claim_seconds: float = 120.0
    # How long a cancelled local job gets between SIGTERM and SIGKILL.
    jobs_cancel_grace_seconds: float = 5.0
    # The cluster Kubernetes jobs run on. An env's IntegrationConfig may name another
    # namespace (settings "namespace") and GPU node label key (settings "gpu_node_label").
    kubernetes_namespace: str = "default"
    kubernetes_host: str | None = None
    kubernetes_token: str | None = None
    kubernetes_verify_ssl: bool = True

    def default_executor(self, env: str) -> TrainingBackend:
        return self.jobs_executors.get(Env(env), TrainingBackend.LOCAL)

    def local_jobs_user(self) -> str | None:
        """Whom local jobs run as: `jobs_run_as` if the service can switch to it (is root)."""
        return self.jobs_run_as if self.jobs_run_as and os.geteuid() == 0 else None

    def tracking_uri(self) -> str:
        local = f"sqlite:///{self.jobs_state_dir.resolve() / 'mlflow.db'}"
        return self.mlflow_tracking_uri or local

    def artifact_root(self) -> str | None:
        """Local stores keep artifacts beside them; a tracking server decides for itself."""
        if self.mlflow_tracking_uri and not self.mlflow_tracking_uri.startswith("sqlite:"):
            return None
        return str(self.jobs_state_dir.resolve() / "mlartifacts")
