"""What a running service holds: database, bus, outbox relay and consumers, started and stopped
together by its FastAPI lifespan. Built by `create_app(settings)`, never at import time."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path

import asyncpg
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from faststream.nats import NatsBroker
from nats.aio.client import Client as NATS
from sqlalchemy import MetaData, Table, text

from shared import messaging
from shared.collector import settle_after_start
from shared.consumers import EventConsumer, ensure_push_consumer, retire_consumers, subscribe
from shared.db import UnitOfWork, create_engine, create_sessionmaker
from shared.driver import driver_connection
from shared.inbox import INBOX_TABLE
from shared.migrations import apply_migrations
from shared.outbox import (
    DEFAULT_MAX_PAYLOAD,
    OUTBOX_TABLE,
    OutboxMessage,
    OutboxRelay,
    event_bytes_carried,
)
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)

# What a service cannot serve without. Not the bus: while it is down the outbox takes every
# write and the relay publishes them once it is back, so the service is ready, degraded; a
# readiness probe that failed would turn a bus outage into an outage of the API.
REQUIRED = ("database", "outbox_relay")
READINESS_SECONDS = 2.0


class ServiceRuntime:
    def __init__(
        self,
        service: str,
        settings: ServiceSettings,
        metadata: MetaData,
        migrations_dir: Path,
        consumers: Sequence[EventConsumer] = (),
    ) -> None:
        self.service = service
        self.settings = settings
        self.metadata = metadata
        self.migrations_dir = migrations_dir
        self.consumers = consumers
        self.outbox: Table = metadata.tables[f"{metadata.schema}.{OUTBOX_TABLE}"]
        self.inbox: Table = metadata.tables[f"{metadata.schema}.{INBOX_TABLE}"]
        self.engine = create_engine(settings.database_url, settings.db_pool_size)
        self.sessionmaker = create_sessionmaker(self.engine)
        # FastStream's line per message received and processed is DEBUG: under load it is most
        # of a service's log and a good part of its CPU. No types applied: the consumers take
        # the raw envelope (`shared.consumers.subscribe`), at half FastStream's CPU a message.
        self.broker = NatsBroker(
            settings.nats_url,
            logger=logging.getLogger(f"{service}.broker"),
            log_level=logging.DEBUG,
            apply_types=False,
        )
        for consumer in consumers:
            subscribe(
                self.broker,
                consumer,
                self.uow,
                self.inbox,
                max_deliveries=settings.max_deliveries,
            )
        self.nats: NATS | None = None
        self.relay: OutboxRelay | None = None
        self._relay_task: asyncio.Task | None = None

    def uow(self, *, begin: bool = True) -> UnitOfWork:
        """A command's unit of work; `begin=False` for one whose change is one statement."""
        return UnitOfWork(
            self.engine,
            self.service,
            self.outbox,
            self._dispatch,
            begin=begin,
            max_event_bytes=self.max_event_bytes,
        )

    @property
    def max_event_bytes(self) -> int:
        """The largest event a change may make: what the bus's server takes in a message
        (nats-server's default until connected), less room for the message's headers."""
        return event_bytes_carried(
            DEFAULT_MAX_PAYLOAD if self.nats is None else self.nats.max_payload
        )

    def connection(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]:
        """asyncpg's connection from the pool, for reads on hot paths (see `driver_connection`)."""
        return driver_connection(self.engine)

    def _dispatch(self, messages: Sequence[OutboxMessage]) -> None:
        # Before the relay starts (or after it stops) the sweep publishes them.
        if self.relay is not None:
            self.relay.dispatch(messages)

    async def start(self) -> None:
        await apply_migrations(self.migrations_dir, self.settings.database_url)
        self.nats = await messaging.connect(self.settings.nats_url, f"{self.service}-relay")
        js = self.nats.jetstream()
        producers = tuple(
            dict.fromkeys([self.service, *(c.subject.split(".")[0] for c in self.consumers)])
        )
        await messaging.ensure_service_streams(
            js, producers, self.settings.duplicate_window_seconds
        )
        self.relay = OutboxRelay(
            self.engine, self.outbox, self.nats, poll_seconds=self.settings.relay_poll_seconds
        )
        self._relay_task = asyncio.create_task(
            self.relay.run(), name=f"{self.service}-outbox-relay"
        )
        await retire_consumers(js, self.service, self.consumers)
        for consumer in self.consumers:
            await ensure_push_consumer(js, consumer, self.settings.max_deliveries)
        if self.consumers:
            await self.broker.start()
        settle_after_start()
        log.info("%s started", self.service)

    async def stop(self) -> None:
        if self.consumers:
            await self.broker.stop()
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        if self.nats is not None:
            await self.nats.drain()
        await self.engine.dispose()

    async def readiness(self) -> dict[str, bool]:
        """Whether each part works: the database, the bus, the outbox relay."""
        checks = {"database": False, "nats": bool(self.nats and self.nats.is_connected)}
        with contextlib.suppress(Exception):
            async with asyncio.timeout(READINESS_SECONDS), self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = True
        checks["outbox_relay"] = self._relay_task is not None and not self._relay_task.done()
        return checks

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()


def readiness_reply(checks: dict[str, bool], required: Iterable[str] = REQUIRED) -> JSONResponse:
    """200 while every `required` check holds, "degraded" when another one fails; else 503."""
    ready = all(checks[name] for name in required)
    degraded = ready and not all(checks.values())
    status = "degraded" if degraded else "ready" if ready else "not ready"
    return JSONResponse(
        {"status": status, "ready": ready, "degraded": degraded, "checks": checks},
        status_code=200 if ready else 503,
    )


def install_health_routes(app: FastAPI, runtime: ServiceRuntime) -> None:
    """`/healthz`: the process answers. `/readyz`: it can serve (`readiness_reply`)."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        return readiness_reply(await runtime.readiness())
