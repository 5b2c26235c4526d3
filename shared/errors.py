"""Errors as RFC 9457 problem details, each with a stable `type`."""

from typing import Any

from pydantic import BaseModel, ConfigDict

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


class RequestTimeout(Problem):
    status, kind, title = 408, "request-timeout", "The request took too long to arrive"


class TooLarge(Problem):
    status, kind, title = 413, "too-large", "Content too large"


class RequestTooLarge(TooLarge):
    kind, title = "request-too-large", "The request body is larger than the server takes"


class UnsupportedMediaType(Problem):
    status, kind, title = 415, "unsupported-media-type", "Unsupported media type"


class UnsupportedEncoding(UnsupportedMediaType):
    kind, title = "unsupported-encoding", "The body is not JSON in UTF-8"


class ServiceUnavailable(Problem):
    status, kind, title = 503, "service-unavailable", "A service is unavailable"


class ProblemDetails(BaseModel):
    """An error reply's body as the OpenAPI documents it (RFC 9457; extensions allowed)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None


def problem_responses(*problems: type[Problem]) -> dict[int | str, dict[str, Any]]:
    """A route's OpenAPI `responses` for the problems it may answer with: one entry per
    status, naming each problem's type (FastAPI's own 422 schema is replaced by it)."""
    by_status: dict[int, list[type[Problem]]] = {}
    for problem in problems:
        by_status.setdefault(problem.status, []).append(problem)
    return {
        status: {
            "description": "; ".join(f"`{p.kind}`: {p.title}" for p in listed),
            "content": {PROBLEM_JSON: {"schema": ProblemDetails.model_json_schema()}},
        }
        for status, listed in sorted(by_status.items())
    }
