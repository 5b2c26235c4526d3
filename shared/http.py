"""HTTP plumbing every service's FastAPI app installs: problem+json errors and correlation ids."""

import logging
from uuid import uuid4

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import context
from shared.errors import PROBLEM_BASE, PROBLEM_JSON, Problem

log = logging.getLogger(__name__)

_HTTP_KINDS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    415: "unsupported-media-type",
    422: "invalid-input",
}


# FastAPI's native OpenTelemetry, off: we configure no provider, yet with it on FastAPI asks
# OpenTelemetry for the global providers (reading the environment) on every request, about 5 %
# of a service's CPU per request under load.
NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def problem_response(body: dict, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=body["status"], media_type=PROBLEM_JSON, headers=headers
    )


def json_reply(
    body: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A reply already shaped by its pydantic model, serialized once. Returning the model
    itself would have FastAPI dump it, validate it against the route's `response_model` (kept
    for the OpenAPI document) and serialize it again: on a hot read, a third of its CPU."""
    return Response(body.model_dump_json(), status_code, headers, media_type="application/json")


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc.to_dict(instance=request.url.path))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": err.get("msg"),
                "type": err.get("type"),
            }
            for err in exc.errors()
        ]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem_response(
            {
                "type": PROBLEM_BASE + "invalid-input",
                "title": "The request is not valid",
                "status": 422,
                "detail": detail,
                "instance": request.url.path,
                "errors": errors,
            }
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return problem_response(
            {
                "type": PROBLEM_BASE + _HTTP_KINDS.get(exc.status_code, "http-error"),
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
                "instance": request.url.path,
            },
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(
            {
                "type": PROBLEM_BASE + "internal-error",
                "title": "Internal error",
                "status": 500,
                "detail": "The server failed; the correlation id identifies its log lines.",
                "instance": request.url.path,
                "correlation_id": context.correlation_id.get(),
            }
        )


class CorrelationMiddleware:
    """Takes the caller's correlation id (or makes one) and, on internal services, the actor.

    Pure ASGI rather than BaseHTTPMiddleware: it sits on every request's hot path.
    """

    def __init__(self, app: ASGIApp, *, trust_actor_header: bool) -> None:
        self.app = app
        self.trust_actor_header = trust_actor_header

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation = None
        actor = None
        for name, value in scope["headers"]:
            if name == b"x-correlation-id" or (name == b"x-request-id" and correlation is None):
                correlation = value.decode("latin-1")[:128]
            elif name == b"x-modelplane-actor" and self.trust_actor_header:
                actor = value.decode("utf-8")
        correlation = correlation or str(uuid4())
        context.correlation_id.set(correlation)
        context.actor.set(actor)
        header = (b"x-correlation-id", correlation.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)
