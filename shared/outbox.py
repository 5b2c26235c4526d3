"""Transactional outbox: events are rows committed with the change; a relay publishes them.

The relay publishes unpublished rows in order with `Nats-Msg-Id` = event id, waits for
JetStream's acks, then marks the rows published. A crash between the publish and the mark
re-publishes on restart, and JetStream's duplicate window drops the copy: nothing is lost,
nothing is seen twice. A statement trigger NOTIFYs the relay on commit, so an event leaves
within milliseconds; a slow poll covers a missed notification.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from nats.js import JetStreamContext
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    Index,
    LargeBinary,
    MetaData,
    String,
    Table,
    Uuid,
    func,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

OUTBOX_TABLE = "outbox"


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        OUTBOX_TABLE,
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", Uuid, nullable=False, unique=True),
        Column("subject", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        Column("published_at", DateTime(timezone=True)),
        Index(
            "ix_outbox_unpublished",
            "seq",
            postgresql_where=Column("published_at").is_(None),
        ),
    )


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


def notify_trigger_sql(schema: str) -> list[str]:
    """DDL that wakes the relay when a transaction that wrote events commits."""
    channel = notify_channel(schema)
    return [
        f"""
        CREATE OR REPLACE FUNCTION "{schema}".notify_outbox() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{channel}', '');
            RETURN NULL;
        END $$
        """,
        f"""
        CREATE TRIGGER outbox_notify AFTER INSERT ON "{schema}".{OUTBOX_TABLE}
        FOR EACH STATEMENT EXECUTE FUNCTION "{schema}".notify_outbox()
        """,
    ]


class OutboxRelay:
    """Publishes a service's outbox to JetStream, in commit order, at least once."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        js: JetStreamContext,
        *,
        poll_seconds: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        self._engine = engine
        self._table = table
        self._js = js
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        self._wake = asyncio.Event()

    async def publish_pending(self) -> int:
        """Publish one batch of unpublished events; returns how many were published."""
        t = self._table
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    select(t.c.seq, t.c.id, t.c.subject, t.c.payload)
                    .where(t.c.published_at.is_(None))
                    .order_by(t.c.seq)
                    .limit(self._batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return 0
            # nats-py writes the publishes in order on one connection; acks come back in any order.
            await asyncio.gather(
                *(
                    self._js.publish(
                        row.subject,
                        row.payload,
                        headers={"Nats-Msg-Id": str(row.id), "Content-Type": "application/cloudevents+json"},
                    )
                    for row in rows
                )
            )
            await conn.execute(
                update(t)
                .where(t.c.seq.in_([row.seq for row in rows]))
                .values(published_at=datetime.now(UTC))
            )
        return len(rows)

    async def drain(self) -> int:
        total = 0
        while published := await self.publish_pending():
            total += published
            if published < self._batch_size:
                break
        return total

    async def run(self) -> None:
        """Publish until cancelled; survives the bus or the database going away for a while."""
        async with self._listen():
            while True:
                self._wake.clear()
                try:
                    await self.drain()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("outbox relay: publishing failed; retrying")
                    await asyncio.sleep(self._poll_seconds)
                    continue
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_seconds):
                        await self._wake.wait()

    @contextlib.asynccontextmanager
    async def _listen(self):  # noqa: ANN202
        schema = self._table.schema
        assert schema is not None
        channel = notify_channel(schema)
        async with self._engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection

            def wake(*_: object) -> None:
                self._wake.set()

            await raw.add_listener(channel, wake)
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    await raw.remove_listener(channel, wake)
