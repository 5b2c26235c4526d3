"""NATS connections and JetStream streams."""

import logging

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from shared.events.streams import dead_letter_config, stream_config
from shared.repeats import RepeatedLog

log = logging.getLogger(__name__)


async def connect(url: str, name: str) -> NATS:
    """A connection that reconnects for ever; while the bus is away its failed attempts are
    logged once per window with a count (nats-py's default logs a traceback for each)."""
    repeated = RepeatedLog(log)

    async def failed(error: Exception) -> None:
        repeated.warning(f"bus connection {name}: {type(error).__name__}: %s", error)

    async def reconnected() -> None:
        log.info("bus connection %s: reconnected", name)

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        error_cb=failed,
        reconnected_cb=reconnected,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or bring an existing one to this configuration."""
    if config.name is None:
        raise ValueError("a stream is created by its name")
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
        except BadRequestError:  # another process created it between our two calls
            await js.update_stream(config)
        return
    if info.config.subjects != config.subjects or (
        info.config.duplicate_window != config.duplicate_window
    ):
        await js.update_stream(config)


async def ensure_service_streams(
    js: JetStreamContext, services: tuple[str, ...], duplicate_window_seconds: float
) -> None:
    """The streams a service publishes to or consumes from, and the dead-letter stream."""
    for service in services:
        await ensure_stream(js, stream_config(service, duplicate_window_seconds))
    await ensure_stream(js, dead_letter_config())
