"""Every problem type the gateway's own routes answer with, besides the ones every service
shares (`invalid-input`, `unauthorized`, `forbidden`, from shared.errors)."""

from shared.errors import Conflict, InvalidInput, NotFound, Problem, TooLarge


class ProjectNotFound(NotFound):
    kind, title = "project-not-found", "No such project"


class DuplicateProjectName(Conflict):
    kind, title = "duplicate-project-name", "A project of that name exists"


class TokenNotFound(NotFound):
    kind, title = "token-not-found", "No such token"


class MemberNotFound(NotFound):
    kind, title = "member-not-found", "No such member of the project"


class IntegrationConfigNotFound(NotFound):
    kind, title = "integration-config-not-found", "No integration config for the concern"


class UnknownIntegrationBackend(InvalidInput):
    kind, title = "unknown-integration-backend", "No such backend for the concern"


class InvalidIdempotencyKey(Problem):
    status, kind, title = 400, "invalid-idempotency-key", "The Idempotency-Key is not valid"


class IdempotencyKeyReused(InvalidInput):
    kind, title = "idempotency-key-reused", "The Idempotency-Key came with another request"


class IdempotencyKeyInUse(Conflict):
    kind, title = "idempotency-key-in-use", "A request with this Idempotency-Key is under way"


class IdempotentReplyNotKept(Conflict):
    kind, title = "idempotent-reply-not-kept", "The first reply held a secret and was not kept"


class UploadTooLarge(TooLarge):
    kind, title = "upload-too-large", "The upload is larger than the gateway takes"


class LineageNotFound(NotFound):
    kind, title = "lineage-start-not-found", "No such node of the lineage, or not yours to read"
