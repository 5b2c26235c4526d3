"""Which backend serves each integration concern is configuration (IntegrationConfig per env,
owned by the gateway): the concerns configured that way and the backends each may name."""

from enum import StrEnum


class Concern(StrEnum):
    TRAINING_EXECUTION = "training_execution"
    SERVING = "serving"
    PIPELINE_ORCHESTRATION = "pipeline_orchestration"
    DATASET_VERSIONING = "dataset_versioning"


class TrainingBackend(StrEnum):
    LOCAL = "local"
    KUBERNETES = "kubernetes"


class ServingBackend(StrEnum):
    """An env's serving framework; its settings' `enabled_frameworks` may enable more."""

    RAY_SERVE = "ray_serve"
    KSERVE = "kserve"


class PipelineBackend(StrEnum):
    LOCAL = "local"
    ARGO_WORKFLOWS = "argo_workflows"


class DatasetRemoteBackend(StrEnum):
    """Where an env's dataset versions are pushed: a DVC remote, its URL and `dvc remote
    modify` options in the settings (`{"url": ..., "options": {...}}`)."""

    LOCAL = "local"  # a directory; without a `url`, the datasets service's own
    S3 = "s3"
    GCS = "gcs"
    AZURE = "azure"
    SSH = "ssh"


BACKENDS: dict[Concern, tuple[str, ...]] = {
    Concern.TRAINING_EXECUTION: tuple(TrainingBackend),
    Concern.SERVING: tuple(ServingBackend),
    Concern.PIPELINE_ORCHESTRATION: tuple(PipelineBackend),
    Concern.DATASET_VERSIONING: tuple(DatasetRemoteBackend),
}
