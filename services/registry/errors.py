"""Every problem type the registry answers with, besides the ones every service shares
(`invalid-input`, `unauthorized`, from shared.errors)."""

from shared.errors import Conflict, Forbidden, InvalidInput, NotFound, TooLarge


class ModelNotFound(NotFound):
    kind, title = "model-not-found", "No such registered model"

    def __init__(self, model_id: object) -> None:
        super().__init__(f"no registered model with id {model_id}")


class VersionNotFound(NotFound):
    kind, title = "version-not-found", "No such model version"

    def __init__(self, what: str) -> None:
        super().__init__(f"no model version {what}")


class DuplicateModelName(Conflict):
    kind, title = "duplicate-model-name", "The project already has a model of that name"


class DuplicateVersion(Conflict):
    kind, title = "duplicate-version", "The model already has a version of that label"


class StageUnchanged(Conflict):
    kind, title = "stage-unchanged", "The version is already in that stage"


class VersionInProduction(Conflict):
    kind, title = "version-in-production", "The version is serving production"


class InvalidTagFilter(InvalidInput):
    kind, title = "invalid-tag-filter", "A tag filter needs a key"


class InvalidCursor(InvalidInput):
    kind, title = "invalid-cursor", "The cursor is not one this API gave out"


class EventTooLarge(TooLarge):
    """Raised by the unit of work (shared.db) for a change whose event the bus cannot carry."""

    kind = "event-too-large"


class OutsideTheRunsProject(Forbidden):
    kind, title = "outside-the-runs-project", "The pipeline run's project does not hold it"
