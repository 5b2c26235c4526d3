"""Errors as RFC 9457 problem details, each with a stable `type`."""

from typing import Any

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://modelplane.dev/problems/"


class Problem(Exception):
    """A client-visible error. Subclasses fix the status; `kind` names the stable type."""

    status: int = 400
    kind: str = "bad-request"
    title: str = "Bad request"

    def __init__(self, detail: str, *, kind: str | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if kind is not None:
            self.kind = kind
        self.extensions = extensions

    def to_dict(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return body


class InvalidInput(Problem):
    status, kind, title = 422, "invalid-input", "The request is not valid"


class Unauthorized(Problem):
    status, kind, title = 401, "unauthorized", "Authentication required"


class Forbidden(Problem):
    status, kind, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, kind, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, kind, title = 409, "conflict", "Conflict with the current state"


class TooLarge(Problem):
    status, kind, title = 413, "too-large", "Content too large"


class UnsupportedMediaType(Problem):
    status, kind, title = 415, "unsupported-media-type", "Unsupported media type"


class ServiceUnavailable(Problem):
    status, kind, title = 503, "service-unavailable", "A service is unavailable"
