"""Run one service's ASGI app: uvloop and httptools, no access log on the hot path, and each
reply's headers and body in one write."""

import asyncio
import weakref
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from shared.logs import configure_logging
from shared.settings import ServiceSettings


class OneWriteReplies(HttpToolsProtocol):
    """uvicorn's httptools protocol, but a reply whose length is known leaves in one write:
    uvicorn writes the status line and headers, then the body, each by itself, so every reply
    cost two sends, two segments (TCP_NODELAY) and often two wake-ups of its reader."""

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        cycle = self.cycle  # a new request's, unless the request is an upgrade
        if cycle is not None and cycle.transport is self.transport:
            cycle.transport = _HeadersWithBody(self.transport, cycle)


class _HeadersWithBody:
    """A request cycle's transport that holds the reply's status line and headers when a body
    of known length follows them, and writes them with the body's first part. A streamed
    reply's headers (chunked: its body may take a while), a reply to HEAD (no body) and
    anything else go out as they are written."""

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        # Not the cycle itself: it holds this as its transport, and a cycle of the two would
        # leave each request's objects to the garbage collector, whose pass over them stopped
        # the service for 5-27 ms about once a second under load.
        self._cycle = weakref.proxy(cycle)
        self._held: bytes | None = None
        self._past_headers = False

    def write(self, data: bytes) -> None:
        if self._held is not None:
            self._transport.writelines((self._held, data))
            self._held = None
        elif not self._past_headers and self._body_follows():
            self._held = data  # the status line and headers
        else:
            self._transport.write(data)
        self._past_headers = self._cycle.response_started

    def _body_follows(self) -> bool:
        """Whether uvicorn writes a body after the headers it is writing now: it does for a
        Content-Length (an empty body too), except in reply to HEAD."""
        cycle = self._cycle
        return cycle.chunked_encoding is False and cycle.scope["method"] != "HEAD"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def serve(app: FastAPI, settings: ServiceSettings, service: str, host: str, port: int) -> None:
    configure_logging(service, settings.log_format, settings.log_level)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=OneWriteReplies,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )
