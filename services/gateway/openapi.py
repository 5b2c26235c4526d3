"""One OpenAPI document for the public API: the gateway's own paths plus its backends' (the
registry's, the jobs service's).

Each backend's document is fetched when the document is asked for and kept once had; while a
backend does not answer, the gateway serves the parts it has.
"""

import copy
import json
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from services.gateway.errors import (
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    IdempotentReplyNotKept,
    InvalidIdempotencyKey,
)
from services.gateway.idempotency import KEY_HEADER, MAX_KEY_LENGTH, REPLAYED_HEADER
from services.gateway.proxy import ServiceProxy
from shared.errors import (
    Problem,
    RequestTooLarge,
    Unauthorized,
    UnsupportedEncoding,
    problem_responses,
)

BEARER_SCHEME = "HTTPBearer"
_OPERATIONS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
_BODY_OPERATIONS = {"put", "post", "patch", "delete"}
# What the gateway itself may answer on any path it forwards, before the service sees it.
FORWARDED_PROBLEMS: tuple[type[Problem], ...] = (Unauthorized,)
FORWARDED_BODY_PROBLEMS: tuple[type[Problem], ...] = (RequestTooLarge, UnsupportedEncoding)


def merge_openapi(
    own: dict[str, Any],
    document: dict[str, Any],
    public_paths: tuple[str, ...] = ("/api/v1/registry",),
    service: str = "registry",
) -> dict[str, Any]:
    """The gateway's document with a backend's public paths and components added. A backend's
    component whose name is taken by a different one is renamed `<Service><Name>`, and the
    backend's references to it follow; each forwarded operation lists the gateway's own
    problem replies."""
    merged = copy.deepcopy(own)
    components = merged.setdefault("components", {})
    backend = _renamed_collisions(components, document, service)
    paths = merged.setdefault("paths", {})
    for path, item in backend.get("paths", {}).items():
        if not path.startswith(public_paths) or path in paths:
            continue
        for method, operation in item.items():
            if method in _OPERATIONS and isinstance(operation, dict):
                operation.setdefault("security", [{BEARER_SCHEME: []}])
                _add_forwarded_problems(operation, method)
        paths[path] = item
    for section, entries in backend.get("components", {}).items():
        target = components.setdefault(section, {})
        for name, value in entries.items():
            target.setdefault(name, value)
    components.setdefault("securitySchemes", {}).setdefault(
        BEARER_SCHEME, {"type": "http", "scheme": "bearer"}
    )
    known_tags = {tag.get("name") for tag in merged.get("tags", [])}
    for tag in backend.get("tags", []):
        if tag.get("name") not in known_tags:
            merged.setdefault("tags", []).append(tag)
    return merged


def _renamed_collisions(
    ours: dict[str, Any], backend: dict[str, Any], service: str
) -> dict[str, Any]:
    """A copy of `backend` whose components that differ from ours of the same name are renamed."""
    renamed = copy.deepcopy(backend)
    refs: dict[str, str] = {}
    for section, entries in renamed.get("components", {}).items():
        taken = ours.get(section, {})
        for name in [n for n, value in entries.items() if n in taken and taken[n] != value]:
            new_name = f"{service.title()}{name}"
            entries[new_name] = entries.pop(name)
            refs[f"#/components/{section}/{name}"] = f"#/components/{section}/{new_name}"
    if not refs:
        return renamed
    text = json.dumps(renamed)
    for old, new in refs.items():
        text = text.replace(json.dumps(old), json.dumps(new))
    return json.loads(text)


def _add_forwarded_problems(operation: dict[str, Any], method: str) -> None:
    problems = FORWARDED_PROBLEMS
    if method in _BODY_OPERATIONS:
        problems += FORWARDED_BODY_PROBLEMS
    responses = operation.setdefault("responses", {})
    for status, response in problem_responses(*problems).items():
        responses.setdefault(str(status), response)


IDEMPOTENCY_KEY_PARAMETER = {
    "name": KEY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry of this request safe. The same key again (for 24 h, per caller) with the"
        " same path and body gets the first reply, with `Idempotent-Replayed: true`, and"
        " nothing is done twice; with another path or body: 422 `idempotency-key-reused`;"
        " while the first request is under way: 409 `idempotency-key-in-use` (retry after"
        " `Retry-After`). A request that could not reach its service frees its key."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_KEY_LENGTH,
        "pattern": "^[\\x20-\\x7E]+$",
    },
}
_IDEMPOTENCY_PROBLEMS: tuple[type[Problem], ...] = (
    InvalidIdempotencyKey,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
)


def with_idempotency_key(
    document: dict[str, Any], secret_paths: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The document with the Idempotency-Key header and its problem replies on every POST."""
    document = copy.deepcopy(document)
    for path, item in document.get("paths", {}).items():
        operation = item.get("post")
        if not isinstance(operation, dict):
            continue
        parameters = operation.setdefault("parameters", [])
        if any(p.get("name") == KEY_HEADER for p in parameters if isinstance(p, dict)):
            continue
        parameters.append(IDEMPOTENCY_KEY_PARAMETER)
        responses = operation.setdefault("responses", {})
        problems = _IDEMPOTENCY_PROBLEMS
        if path in secret_paths:
            problems = (*problems, IdempotentReplyNotKept)
        for status, reply in problem_responses(*problems).items():
            if (listed := responses.get(str(status))) is None:
                responses[str(status)] = reply
            else:
                listed["description"] = f"{listed.get('description', '')}; {reply['description']}"
        for status, reply in responses.items():
            if str(status).startswith("2") and isinstance(reply, dict):
                reply.setdefault("headers", {})[REPLAYED_HEADER] = {
                    "description": "`true` on the first reply given again for its key",
                    "schema": {"type": "string", "enum": ["true"]},
                }
    return document


class MergedOpenAPI:
    """Serves `/api/v1/openapi.json` and the docs page as the merge: a backend's document is
    fetched when the merge is asked for and the gateway does not have it yet, then kept, so
    the document is whole whenever every backend answers."""

    def __init__(
        self, app: FastAPI, proxies: list[ServiceProxy], secret_paths: frozenset[str] = frozenset()
    ) -> None:
        self._app = app
        self._secret_paths = secret_paths
        self._proxies = proxies
        self._documents: list[dict[str, Any] | None] = [None] * len(proxies)
        self._merged: dict[str, Any] | None = None
        app.openapi = self.schema  # type: ignore[method-assign]

    def schema(self) -> dict[str, Any]:
        """The merge of the documents at hand (what FastAPI's `app.openapi()` returns)."""
        if self._merged is not None:
            return self._merged
        merged = FastAPI.openapi(self._app)  # built once and cached by FastAPI
        for proxy, document in zip(self._proxies, self._documents, strict=True):
            if document is not None:
                merged = merge_openapi(merged, document, proxy.public_paths, proxy.name)
        merged = with_idempotency_key(merged, self._secret_paths)
        if all(d is not None for d in self._documents):
            self._merged = merged  # complete: keep it
        return merged

    async def fetch(self) -> None:
        """Ask each backend whose document is missing for it."""
        for i, proxy in enumerate(self._proxies):
            self._documents[i] = self._documents[i] or await proxy.openapi()

    def router(self, openapi_url: str, docs_url: str) -> APIRouter:
        router = APIRouter(include_in_schema=False)

        @router.get(openapi_url)
        async def openapi() -> JSONResponse:
            if self._merged is None:
                await self.fetch()
            return JSONResponse(self.schema())

        @router.get(docs_url)
        async def docs() -> HTMLResponse:
            return get_swagger_ui_html(
                openapi_url=openapi_url, title=f"{self._app.title} - Swagger UI"
            )

        return router
