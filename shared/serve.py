"""Run one service's ASGI app: uvloop and httptools, no access log on the hot path."""

import uvicorn
from fastapi import FastAPI

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
