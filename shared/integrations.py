"""Which backend serves each integration concern is configuration (IntegrationConfig per env,
owned by the gateway): the concerns configured that way and the backends each may name."""

from enum import StrEnum


class Concern(StrEnum):
    TRAINING_EXECUTION = "training_execution"


class TrainingBackend(StrEnum):
    LOCAL = "local"
    KUBERNETES = "kubernetes"


BACKENDS: dict[Concern, tuple[str, ...]] = {
    Concern.TRAINING_EXECUTION: tuple(TrainingBackend),
}
