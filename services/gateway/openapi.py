"""One OpenAPI document for the public API: the gateway's own paths plus its backends' (the
registry's, the jobs service's).

Each backend's document is fetched once it answers and kept; until then the gateway serves
the parts it has.
"""

import asyncio
import contextlib
import copy
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from services.gateway.proxy import ServiceProxy

log = logging.getLogger(__name__)

BEARER_SCHEME = "HTTPBearer"
_OPERATIONS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def merge_openapi(
    own: dict[str, Any],
    registry: dict[str, Any],
    public_paths: tuple[str, ...] = ("/api/v1/registry",),
) -> dict[str, Any]:
    """The gateway's document with a backend's public paths and components added."""
    merged = copy.deepcopy(own)
    paths = merged.setdefault("paths", {})
    for path, item in registry.get("paths", {}).items():
        if not path.startswith(public_paths) or path in paths:
            continue
        item = copy.deepcopy(item)
        for method, operation in item.items():
            if method in _OPERATIONS and isinstance(operation, dict):
                operation.setdefault("security", [{BEARER_SCHEME: []}])
        paths[path] = item
    components = merged.setdefault("components", {})
    for section, entries in registry.get("components", {}).items():
        target = components.setdefault(section, {})
        for name, value in entries.items():
            if name in target and target[name] != value:
                log.warning("openapi: registry component %s/%s differs; kept ours", section, name)
            target.setdefault(name, value)
    components.setdefault("securitySchemes", {}).setdefault(
        BEARER_SCHEME, {"type": "http", "scheme": "bearer"}
    )
    known_tags = {tag.get("name") for tag in merged.get("tags", [])}
    for tag in registry.get("tags", []):
        if tag.get("name") not in known_tags:
            merged.setdefault("tags", []).append(tag)
    return merged


class MergedOpenAPI:
    """Replaces `app.openapi` so FastAPI's `/api/v1/openapi.json` and docs serve the merge."""

    def __init__(
        self, app: FastAPI, proxies: list[ServiceProxy], retry_seconds: float = 5.0
    ) -> None:
        self._app = app
        self._proxies = proxies
        self._retry_seconds = retry_seconds
        self._documents: list[dict[str, Any] | None] = [None] * len(proxies)
        self._merged: dict[str, Any] | None = None
        app.openapi = self.schema  # type: ignore[method-assign]

    def schema(self) -> dict[str, Any]:
        if self._merged is not None:
            return self._merged
        merged = FastAPI.openapi(self._app)  # built once and cached by FastAPI
        for proxy, document in zip(self._proxies, self._documents, strict=True):
            if document is not None:
                merged = merge_openapi(merged, document, proxy.public_paths)
        if all(d is not None for d in self._documents):
            self._merged = merged  # complete: keep it
        return merged

    async def fetch(self) -> bool:
        for i, proxy in enumerate(self._proxies):
            self._documents[i] = self._documents[i] or await proxy.openapi()
        return all(d is not None for d in self._documents)

    @contextlib.asynccontextmanager
    async def kept_fresh(self) -> AsyncIterator[None]:
        """Fetch at start-up; if a backend is not up yet, keep trying in the background."""
        task = None if await self.fetch() else asyncio.create_task(self._retry())
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _retry(self) -> None:
        while not await self.fetch():
            await asyncio.sleep(self._retry_seconds)
        log.info("openapi: merged every backend's paths")
