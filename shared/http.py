"""HTTP plumbing every service's FastAPI app installs: problem+json errors and correlation ids."""

import logging
from collections.abc import Mapping
from typing import Any
from uuid import uuid4

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.telemetry import TelemetryConfig
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import context
from shared.auth import CREDENTIAL_HEADER, CredentialVerifier
from shared.errors import (
    PROBLEM_BASE,
    PROBLEM_JSON,
    Problem,
    RequestTooLarge,
    Unauthorized,
    UnsupportedEncoding,
)

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


def rows_reply(
    shape: type[BaseModel],
    body: Mapping[str, Any],
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """A reply of `shape` validated from rows (keyed as the model validates) and written by
    pydantic; returned as a response, so FastAPI does not validate and serialize it again."""
    return Response(
        shape.model_validate(body).model_dump_json(),
        status_code,
        headers,
        media_type="application/json",
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route of the app takes at this path: Starlette's 405 names only
    those of the first route that matched the path."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return ", ".join(sorted(methods))


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
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            headers = {**(headers or {}), "Allow": _allowed_methods(request)}
        return problem_response(
            {
                "type": PROBLEM_BASE + _HTTP_KINDS.get(exc.status_code, "http-error"),
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
                "instance": request.url.path,
            },
            headers=headers,
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
            },
            # The server closes the connection after an unhandled error: said here, a client
            # that keeps connections does not send its next request down a closing one.
            headers={"Connection": "close"},
        )


# What a service answers without the gateway's credential: probes and its API's description.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json"})


class CorrelationMiddleware:
    """Takes the caller's correlation id (or makes one) and, on internal services (given a
    `verifier`), the caller from the gateway's signed credential: a request without a valid
    one is answered 401 problem+json, except on `OPEN_PATHS`. The actor is the credential's
    subject, never what a plain header says.

    Pure ASGI rather than BaseHTTPMiddleware: it sits on every request's hot path.
    """

    def __init__(self, app: ASGIApp, *, verifier: CredentialVerifier | None) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation = None
        credential = None
        for name, value in scope["headers"]:
            if name == b"x-correlation-id" or (name == b"x-request-id" and correlation is None):
                correlation = value.decode("latin-1")[:128]
            elif name == _CREDENTIAL:
                credential = value.decode("latin-1")
        correlation = correlation or str(uuid4())
        context.correlation_id.set(correlation)
        header = (b"x-correlation-id", correlation.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        caller = None
        if self.verifier is not None and scope["path"] not in OPEN_PATHS:
            try:
                caller = self.verifier.verify(credential)
            except Unauthorized as problem:
                reply = problem_response(problem.to_dict(instance=scope["path"]))
                await reply(scope, receive, send_with_id)
                return
        context.caller.set(caller)
        context.actor.set(caller.subject if caller else None)
        await self.app(scope, receive, send_with_id)


_CREDENTIAL = CREDENTIAL_HEADER.lower().encode()
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_BOMS = (b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe")  # UTF-8's, UTF-16's (and UTF-32's)


class Utf8JsonOnly:
    """Refuses a request body that is not UTF-8 (a byte-order mark, UTF-16 or UTF-32, bytes
    that do not decode, or a Content-Type naming another charset) with 415 problem+json
    (`unsupported-encoding`), so that every reader of the body, the gateway included, reads
    the same JSON: RFC 8259 makes UTF-8 the only encoding of JSON between systems."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-type":
                charset = _charset(value)
                if charset is not None and charset not in ("utf-8", "utf8"):
                    await self._refuse(scope, receive, send, f"charset={charset}")
                    return
                break
        first: Message = await receive()
        body = first.get("body", b"")
        if first.get("more_body"):
            chunks = [body]
            while first.get("more_body"):
                first = await receive()
                chunks.append(first.get("body", b""))
            body = b"".join(chunks)
            first = {"type": "http.request", "body": body, "more_body": False}
        if body.startswith(_BOMS) or b"\x00" in body:
            await self._refuse(scope, receive, send, "a byte-order mark or UTF-16/32")
            return
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            await self._refuse(scope, receive, send, "bytes that are not UTF-8")
            return
        await self.app(scope, _replaying(first, receive), send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, found: str) -> None:
        problem = UnsupportedEncoding(
            f"request bodies are JSON in UTF-8 without a byte-order mark; this one has {found}"
        )
        await problem_response(problem.to_dict(instance=scope["path"]))(scope, receive, send)


def _charset(content_type: bytes) -> str | None:
    for part in content_type.decode("latin-1").split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


# What a refused body may still send: read and dropped, so that a client that sends the whole
# body before it reads the reply gets the 413 rather than a reset connection. Past it, or past
# a Content-Length beyond it, the connection closes unread.
REFUSED_BYTES_DRAINED = 1024 * 1024


class BodyLimit:
    """Refuses a request body longer than `max_bytes` with 413 problem+json
    (`request-too-large`) before the app reads any of it: at once when its Content-Length
    says so; a chunked body is read here up to the limit and handed on whole. No request
    holds more than the limit in memory."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":  # the server reads that many bytes and no more
                if (length := int(value)) > self.max_bytes:
                    drained = length <= REFUSED_BYTES_DRAINED and await _drain(receive)
                    await self._refuse(scope, receive, send, keep_alive=drained)
                    return
                break
            if name == b"transfer-encoding":
                message, within = await self._read_chunked(receive)
                if not within:
                    await self._refuse(
                        scope, receive, send, keep_alive=await _drain(receive, message)
                    )
                    return
                receive = _replaying(message, receive)
                break
        await self.app(scope, receive, send)

    async def _read_chunked(self, receive: Receive) -> tuple[Message, bool]:
        """The body as one message and True; or, once it passes the limit, the last message
        read and False."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return message, True  # the client went away: the app learns it as it would have
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return message, False
            chunks.append(chunk)
            if not message.get("more_body"):
                whole = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                return whole, True

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, *, keep_alive: bool
    ) -> None:
        problem = RequestTooLarge(
            f"the request body is larger than {self.max_bytes} bytes", max_bytes=self.max_bytes
        )
        headers = None if keep_alive else {"Connection": "close"}
        reply = problem_response(problem.to_dict(instance=scope["path"]), headers)
        await reply(scope, receive, send)


async def _drain(receive: Receive, last: Message | None = None) -> bool:
    """Read and drop what is left of a body after `last`, the message read last (None: none
    read yet), up to `REFUSED_BYTES_DRAINED`; whether it all came."""
    left = REFUSED_BYTES_DRAINED
    message = last or {"type": "http.request", "more_body": True}
    while message["type"] == "http.request" and message.get("more_body"):
        if left < 0:
            return False
        message = await receive()
        left -= len(message.get("body", b""))
    return message["type"] == "http.request"


def _replaying(first: Message, receive: Receive) -> Receive:
    """A `receive` that gives `first`, then goes on to the server's (for a disconnect)."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
