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


# The promotion policy's refusals, one type per rule (domain.PromotionPolicy).


class StagingRequired(Conflict):
    kind, title = "staging-required", "The policy moves only a version in staging to production"


class MetricGateNotMet(Conflict):
    kind, title = "metric-gate-not-met", "The version's metrics do not meet the policy's gate"


class AuthorMayNotApprove(Forbidden):
    kind, title = "author-may-not-approve", "The policy forbids a version's author to approve it"


class AlreadyApproved(Conflict):
    kind, title = "already-approved", "The approver has approved this request already"


class PromotionPending(Conflict):
    kind, title = "promotion-pending", "A move of the version to production awaits approvals"


class PromotionRequestClosed(Conflict):
    kind, title = (
        "promotion-request-closed",
        "The request was approved, rejected, withdrawn or superseded",
    )


class PromotionRequestNotFound(NotFound):
    kind, title = "promotion-request-not-found", "No such promotion request"

    def __init__(self, request_id: object) -> None:
        super().__init__(f"no promotion request with id {request_id}")


class NotTheRequester(Forbidden):
    kind, title = "not-the-requester", "Only who made a request may withdraw it"


class InvalidMetricGate(InvalidInput):
    kind, title = "invalid-metric-gate", "The metric gate is not an expression the policy reads"


class EventTooLarge(TooLarge):
    """Raised by the unit of work (shared.db) for a change whose event the bus cannot carry."""

    kind = "event-too-large"


class OutsideTheRunsProject(Forbidden):
    kind, title = "outside-the-runs-project", "The pipeline run's project does not hold it"


class PromotionAwaitsApprovals(Conflict):
    kind = "promotion-awaits-approvals"
    title = "The promotion policy holds the move until approvers approve it"
