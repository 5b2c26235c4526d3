"""Streamed paths (a service's `streamed_paths` in shared/service_table.py: file uploads): their
bodies go on to the service as they arrive, under the upload limit, instead of being read
whole under the limit every other request has (shared.http.BodyLimit)."""

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.auth import problem_reply
from services.gateway.errors import UploadTooLarge
from services.gateway.idempotency import mark_unapplied
from services.gateway.upstream import Header
from shared.errors import Problem, RequestTimeout
from shared.service_table import ServiceSpec

if TYPE_CHECKING:  # the proxy hands its bodies to StreamedBody
    from services.gateway.proxy import ServiceProxy


class StreamedBody:
    """A request's body handed on piece by piece: at most `max_bytes` in all, no pause longer
    than `idle_seconds`; once it breaks one of those, `problem` says which."""

    def __init__(
        self,
        receive: Receive,
        length: int | None,
        *,
        max_bytes: int,
        idle_seconds: float,
        reply_seconds: float,
    ) -> None:
        self._receive = receive
        self.length = length
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.reply_seconds = reply_seconds
        self.problem: Problem | None = None
        self.finished = False

    @property
    def headers(self) -> list[Header]:
        """The length the service is told, so it can show progress and refuse early too."""
        return [] if self.length is None else [(b"content-length", str(self.length).encode())]

    def too_large(self) -> UploadTooLarge:
        return UploadTooLarge(
            f"the upload is larger than {self.max_bytes} bytes", max_bytes=self.max_bytes
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        received = 0
        while not self.finished:
            try:
                async with asyncio.timeout(self.idle_seconds):
                    message = await self._receive()
            except TimeoutError:
                self.problem = RequestTimeout(
                    f"the upload paused for more than {self.idle_seconds:g} s",
                    timeout_seconds=self.idle_seconds,
                )
                raise self.problem from None
            if message["type"] != "http.request":
                raise ConnectionAbortedError("the client went away during its upload")
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                self.problem = self.too_large()
                raise self.problem
            self.finished = not message.get("more_body")
            if chunk:
                yield chunk


class StreamedUploads:
    """ASGI middleware: a request to a streamed path goes to its service with its body streamed
    (413 at once when its Content-Length is past the limit, or as soon as the bytes are);
    anything else goes on to the app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        table: Sequence[ServiceSpec],
        proxies: Sequence["ServiceProxy"],
        max_bytes: int,
        idle_seconds: float,
        reply_seconds: float,
        keyed: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> None:
        self.app = app
        # An upload skips the Idempotency layer in front of the app, so it gets one of its own.
        self._upload: ASGIApp = self._stream if keyed is None else keyed(self._stream)
        by_name = {proxy.name: proxy for proxy in proxies}
        self.routes = [
            (re.compile(pattern), by_name[spec.name])
            for spec in table
            if spec.name in by_name
            for pattern in spec.streamed_paths
        ]
        self.max_bytes = max_bytes
        self.idle_seconds = idle_seconds
        self.reply_seconds = reply_seconds

    def _proxy(self, scope: Scope) -> "ServiceProxy | None":
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT"):
            return None
        return next(
            (proxy for pattern, proxy in self.routes if pattern.fullmatch(scope["path"])), None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxy = self._proxy(scope) if self.routes else None
        if proxy is None:
            await self.app(scope, receive, send)
            return
        await self._upload(scope, receive, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        proxy = self._proxy(scope)
        assert proxy is not None
        declared = next((v for n, v in scope["headers"] if n == b"content-length"), None)
        body = StreamedBody(
            receive,
            int(declared) if declared is not None and declared.isdigit() else None,
            max_bytes=self.max_bytes,
            idle_seconds=self.idle_seconds,
            reply_seconds=self.reply_seconds,
        )
        try:
            if body.length is not None and body.length > self.max_bytes:
                raise body.too_large()
            await proxy.forward(scope, receive, send, upload=body)
        except Problem as problem:
            mark_unapplied(scope)  # the gateway broke the upload off: an Idempotency-Key is freed
            reply = problem_reply(problem, scope["path"])
            if not body.finished:
                reply.headers["Connection"] = "close"  # the rest of the body is never read
            await reply(scope, receive, send)
