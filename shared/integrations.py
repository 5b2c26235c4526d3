"""Which backend serves each integration concern is configuration (IntegrationConfig per env,
owned by the gateway): the concerns configured that way and the backends each may name."""

from enum import StrEnum


class Concern(StrEnum):
    TRAINING_EXECUTION = "training_execution"
    PIPELINE_ORCHESTRATION = "pipeline_orchestration"


class TrainingBackend(StrEnum):
    LOCAL = "local"
    KUBERNETES = "kubernetes"


class PipelineBackend(StrEnum):
    LOCAL = "local"
    ARGO_WORKFLOWS = "argo_workflows"


BACKENDS: dict[Concern, tuple[str, ...]] = {
    Concern.TRAINING_EXECUTION: tuple(TrainingBackend),
    Concern.PIPELINE_ORCHESTRATION: tuple(PipelineBackend),
}
