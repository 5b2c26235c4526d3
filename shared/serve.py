"""Run a service's ASGI app. The internal services run under uvicorn as it ships; the gateway,
which faces clients, under granian, whose header-read timeout closes a connection that sends
no request in time (a silent socket, a trickle of headers, an idle keep-alive), and whose
backpressure caps the connections it holds: uvicorn has neither."""

import contextlib
import resource

import uvicorn
from fastapi import FastAPI
from granian.constants import HTTPModes, Interfaces, Loops
from granian.http import HTTP1Settings
from granian.server import Server

from shared.logs import configure_logging
from shared.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings, service: str, host: str, port: int) -> None:
    configure_logging(service, settings.log_format, settings.log_level)
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


def serve_public(
    factory: str,
    host: str,
    port: int,
    *,
    header_timeout_seconds: float,
    max_connections: int,
    max_header_bytes: int,
) -> None:
    """Serve the app `factory` ("module:function", called in the worker process) to clients:
    a connection gets `header_timeout_seconds` for each request's headers, the first one's
    included; at most `max_connections` are held, more wait in the listen backlog; a request
    head over `max_header_bytes` (8 KiB at least) is answered 431."""
    raise_descriptor_limit()
    Server(
        factory,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        factory=True,
        workers=1,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        backpressure=max_connections,
        http1_settings=HTTP1Settings(
            header_read_timeout=max(1, round(header_timeout_seconds * 1000)),
            keep_alive=True,
            max_buffer_size=max_header_bytes,
        ),
        log_access=False,
        workers_kill_timeout=10,  # an open event stream does not hold a shutdown up for ever
    ).serve()


def raise_descriptor_limit() -> None:
    """Open files up to the hard limit: each connection held is one (a worker inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    with contextlib.suppress(ValueError, OSError):  # a limit the system does not allow stays
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
