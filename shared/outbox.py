"""Transactional outbox: events are rows committed with the change; a relay publishes them.

- **Dispatch**: a unit of work hands its committed events to `OutboxRelay.dispatch`, which
  publishes them at once (`publish_async`) and removes their rows in batches once acked.
- **Sweep**: every `poll_seconds`, rows still there a while after they were written (a process
  died before publishing, the bus was away) are published (`js.publish`) and removed.

Both publish with `Nats-Msg-Id` = the event's id, so JetStream's duplicate window drops a copy;
a row goes only once acked, so nothing is lost. An event JetStream refuses stays, with why, and
is tried again after a pause that doubles each time (up to `RETRY_MAX_SECONDS`).
"""

import asyncio
import logging
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import partial
from typing import NamedTuple
from uuid import UUID

import asyncpg
from nats.aio.client import Client as NATS
from nats.errors import MaxPayloadError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.errors import Error as JetStreamError
from nats.js.errors import NoStreamResponseError
from sqlalchemy import (
    CTE,
    BigInteger,
    Column,
    ColumnElement,
    DateTime,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    bindparam,
    cast,
    func,
    insert,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.driver import driver_connection
from shared.jetstream import JetStreamPublisher
from shared.repeats import RepeatedLog

log = logging.getLogger(__name__)

OUTBOX_TABLE = "outbox"
CONTENT_TYPE = "application/cloudevents+json"
# How long published events wait to be removed together; far below the sweep's grace period.
REMOVE_GATHER_SECONDS = 0.05
# An event whose ack has not come by then is left to the sweep (JetStream drops a copy).
ACK_TIMEOUT_SECONDS = 5.0
# How long the sweep claims the rows it publishes: past it, a relay that died meanwhile or
# heard no ack leaves them to the next sweep.
CLAIM_SECONDS = 2 * ACK_TIMEOUT_SECONDS
# The most a message on the bus may hold: nats-server's default `max_payload`, until a
# service has connected and its server said its own.
DEFAULT_MAX_PAYLOAD = 1024 * 1024
# What a message holds beside its event: its headers, and what a statement fills in (a name).
EVENT_HEADROOM = 8 * 1024
# The longest pause before a refused event is tried again.
RETRY_MAX_SECONDS = 300.0


def event_bytes_carried(max_payload: int = DEFAULT_MAX_PAYLOAD) -> int:
    """The largest event a message of `max_payload` bytes carries, with `EVENT_HEADROOM` left."""
    return max_payload - EVENT_HEADROOM


def outbox_table(metadata: MetaData) -> Table:
    return Table(
        OUTBOX_TABLE,
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("id", Uuid, nullable=False, unique=True),
        Column("subject", String(255), nullable=False),
        Column("payload", LargeBinary, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
        # How often JetStream refused the event and why; when the sweep may take it (again):
        # after a refusal's pause, or once a sweep's claim on it ended.
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("last_error", Text),
        Column("retry_at", DateTime(timezone=True)),
    )


class OutboxMessage(NamedTuple):
    id: UUID
    subject: str
    payload: bytes


_SUBJECT = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


def insert_literal_sql(table: Table, messages: Sequence[OutboxMessage]) -> str:
    """The messages as one INSERT whose values are literals, for the unit of work to send with
    its COMMIT in one message (the simple protocol that allows two statements takes no
    parameters). No value can leave its literal: ids are rendered from their UUID, subjects
    must be dotted names, payloads go hex-encoded."""
    rows = []
    for m in messages:
        if not _SUBJECT.fullmatch(m.subject):
            raise ValueError(f"not an event subject: {m.subject!r}")
        rows.append(f"('{m.id.hex}', '{m.subject}', decode('{m.payload.hex()}', 'hex'))")
    return (
        f"INSERT INTO {table.schema}.{table.name} (id, subject, payload) VALUES {', '.join(rows)}"
    )


_NAME = re.compile(r"[a-z_][a-z0-9_]*")


# The parameters a statement that writes its events takes them in (`Statement` values).
EVENT_PARAMETERS = ("event_ids", "event_subjects", "event_payloads")


def events_written_by(table: Table, source: CTE, fill: Mapping[str, str] = {}) -> CTE:
    """A CTE `events` writing a command's events to the outbox once for the row of `source`
    (none when the statement wrote nothing), for a `Statement` to `add_cte`.

    The events' arrays are its parameters `EVENT_PARAMETERS`; `fill` maps fields of their data
    to columns of `source` whose values the statement makes."""
    ids, subjects, payloads = EVENT_PARAMETERS
    e = (
        func.unnest(
            bindparam(ids, type_=ARRAY(Uuid)),
            bindparam(subjects, type_=ARRAY(Text)),
            bindparam(payloads, type_=ARRAY(LargeBinary)),
        )
        .table_valued("id", "subject", "payload", with_ordinality="n")
        .render_derived()
        .alias("e")
    )
    payload: ColumnElement = e.c.payload
    if fill:
        utf8 = literal_column("'UTF8'", Text)
        document: ColumnElement = cast(func.convert_from(payload, utf8), JSONB)
        for field, column in fill.items():
            if not _NAME.fullmatch(field):
                raise ValueError(f"not a field: {field!r}")
            path = literal_column(f"'{{data,{field}}}'", ARRAY(Text))
            document = func.jsonb_set(document, path, func.to_jsonb(source.c[column]))
        payload = func.convert_to(cast(document, Text), utf8)
    rows = select(e.c.id, e.c.subject, payload).select_from(e, source).order_by(e.c.n)
    return insert(table).from_select(["id", "subject", "payload"], rows).cte("events")


class OutboxRelay:
    """Publishes a service's outbox to JetStream, at least once, in commit order while healthy."""

    def __init__(
        self,
        engine: AsyncEngine,
        table: Table,
        nc: NATS,
        *,
        poll_seconds: float = 1.0,
        batch_size: int = 500,
    ) -> None:
        self._engine = engine
        self._table = table
        outbox = f"{table.schema}.{table.name}"
        # One id a row (`executemany`: one round trip, one commit): a generic plan for an
        # array is costed for ten ids, dearer than a custom one for the usual one or two, so
        # Postgres would plan `= ANY($1)` anew at every call.
        self._remove_sql = f"DELETE FROM {outbox} WHERE id = $1"
        # Rows are claimed for the time their publish may take (`retry_at`, in a statement of
        # their own: no transaction is held while the bus answers). Rows another relay claimed
        # are skipped, not waited for; so are refused rows until their pause is over.
        self._claim_sql = f"""
            UPDATE {outbox} o SET retry_at = now() + make_interval(secs => $4::float8)
            FROM (
                SELECT seq FROM {outbox}
                WHERE created_at <= now() - $1::interval AND seq > $2
                    AND (retry_at IS NULL OR retry_at <= now())
                ORDER BY seq LIMIT $3
                FOR UPDATE SKIP LOCKED
            ) claimed
            WHERE o.seq = claimed.seq
            RETURNING o.seq, o.id, o.subject, o.payload
        """
        # The pause after the nth refusal: the sweep's grace period, doubled n - 1 times.
        self._refused_sql = f"""
            UPDATE {outbox} o SET attempts = o.attempts + 1, last_error = r.error,
                retry_at = now() + make_interval(secs => least(
                    $3::float8, $4::float8 * power(2.0::float8, least(o.attempts, 30))))
            FROM unnest($1::uuid[], $2::text[]) AS r (id, error)
            WHERE o.id = r.id
        """
        self._publisher = JetStreamPublisher(nc, ACK_TIMEOUT_SECONDS)
        self._nc = nc
        self._js = nc.jetstream()
        self._logger = RepeatedLog(log)  # a problem of every message, once per window
        self._poll_seconds = poll_seconds
        self._batch_size = batch_size
        # A row younger than this is the dispatch path's to publish; the sweep leaves it alone.
        self._sweep_after = timedelta(seconds=max(2.0, 2 * poll_seconds))
        self._retry_max_seconds = max(RETRY_MAX_SECONDS, self._sweep_after.total_seconds())
        self._to_publish: list[OutboxMessage] = []
        self._to_remove: list[UUID] = []
        self._publish_wanted = asyncio.Event()
        self._remove_wanted = asyncio.Event()

    def dispatch(self, messages: Sequence[OutboxMessage]) -> None:
        """Take events whose transaction just committed; they leave without waiting for a poll."""
        self._to_publish.extend(messages)
        self._publish_wanted.set()

    async def run(self) -> None:
        """Publish until cancelled; survives the bus or the database going away for a while."""
        await self._publisher.start()
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._keep_dispatching())
                tasks.create_task(self._keep_removing())
                tasks.create_task(self._keep_sweeping())
        finally:
            await self._publisher.stop()

    async def drain(self) -> int:
        """Publish every row now, however young (a refused one once its pause is over);
        returns how many JetStream stored."""
        return await self._publish_waiting(timedelta(0))

    async def _publish_waiting(self, older_than: timedelta) -> int:
        total = 0
        after_seq = 0  # batch after batch in commit order, past rows JetStream refused
        while True:
            taken, stored, after_seq = await self._publish_batch(older_than, after_seq)
            total += stored
            if taken < self._batch_size:
                return total

    async def _publish_batch(self, older_than: timedelta, after_seq: int) -> tuple[int, int, int]:
        """Publish the oldest rows left after `after_seq` and remove those JetStream stored;
        returns how many were taken, how many stored, and the last one's seq. A row it refuses
        stays, paused before its next attempt; one unacked stays claimed until its claim ends."""
        async with driver_connection(self._engine) as conn:
            rows = await conn.fetch(
                self._claim_sql, older_than, after_seq, self._batch_size, CLAIM_SECONDS
            )
        rows = sorted(rows, key=lambda row: row["seq"])
        messages = [OutboxMessage(row["id"], row["subject"], row["payload"]) for row in rows]
        stored, refused = await self._publish(messages) if rows else ([], {})
        if stored or refused:
            async with driver_connection(self._engine) as conn:
                if stored:
                    await self._remove(conn, stored)
                if refused:
                    await self._pause(conn, refused)
        return len(rows), len(stored), rows[-1]["seq"] if rows else after_seq

    async def _remove(self, conn: asyncpg.Connection, ids: Sequence[UUID]) -> None:
        """Delete the rows of published events: one statement a row, one round trip, one commit."""
        await conn.executemany(self._remove_sql, [(event_id,) for event_id in ids])

    async def _pause(self, conn: asyncpg.Connection, refused: dict[UUID, str]) -> None:
        """Record why JetStream refused these events and pause each before its next attempt."""
        pause = self._sweep_after.total_seconds()
        await conn.execute(
            self._refused_sql, list(refused), list(refused.values()), self._retry_max_seconds, pause
        )
        first, why = next(iter(refused.items()))
        self._logger.warning(
            "outbox relay: JetStream refused %d events (the first, %s: %s); each is tried again "
            "after a pause that doubles each time, up to %.0f s",
            len(refused),
            first,
            why,
            self._retry_max_seconds,
        )

    async def _keep_dispatching(self) -> None:
        """Publish each batch as it comes, in order, without waiting for acks: each event's row
        is removed when its own ack arrives, never waits for another's."""
        while True:
            await self._publish_wanted.wait()
            self._publish_wanted.clear()
            while self._to_publish:
                batch = self._to_publish[: self._batch_size]
                del self._to_publish[: len(batch)]
                try:
                    for m in batch:
                        ack = await self._publisher.publish(m.subject, m.payload, _headers(m))
                        ack.add_done_callback(partial(self._acked, m.id))
                except Exception:
                    # The rest queued fare no better: all of it is the sweep's now.
                    left = len(batch) + len(self._to_publish)
                    self._to_publish.clear()
                    self._logger.warning(
                        "outbox relay: publishing failed; the sweep publishes the events",
                        count=left,
                        exc_info=True,
                    )

    def _acked(self, event_id: UUID, ack: asyncio.Future[int]) -> None:
        if ack.cancelled():
            return  # no ack in time: the sweep publishes it again, JetStream drops a copy
        if (error := ack.exception()) is not None:
            self._logger.warning(
                "outbox relay: an event was not stored (%s); the sweep publishes it again",
                type(error).__name__,
            )
            return
        self._to_remove.append(event_id)
        self._remove_wanted.set()

    async def _publish(
        self, messages: Sequence[OutboxMessage]
    ) -> tuple[list[UUID], dict[UUID, str]]:
        """Publish the events, each with JetStream's request and reply (`js.publish`, which
        raises what JetStream refused, unlike `publish_async`: nats-io/nats.py#985); returns the
        ids of those stored before the ack timeout, and why it refused the ones it refused."""
        replies = await asyncio.gather(
            *(
                self._js.publish(
                    m.subject, m.payload, timeout=ACK_TIMEOUT_SECONDS, headers=_headers(m)
                )
                for m in messages
            ),
            return_exceptions=True,
        )
        stored, refused, late = [], {}, 0
        for message, reply in zip(messages, replies, strict=True):
            if isinstance(reply, NatsTimeoutError):
                late += 1
            elif isinstance(reply, NoStreamResponseError):
                refused[message.id] = "no stream takes the message's subject"
            elif isinstance(reply, JetStreamError | MaxPayloadError):
                refused[message.id] = f"JetStream refused it: {reply}"
            elif isinstance(reply, BaseException):
                raise reply
            else:
                stored.append(message.id)
        if late:
            self._logger.warning("events unacked after %.0f s", ACK_TIMEOUT_SECONDS, count=late)
        return stored, refused

    async def _keep_removing(self) -> None:
        while True:
            await self._remove_wanted.wait()
            # Nothing waits on a removal: gathering a moment's worth makes one commit of many.
            await asyncio.sleep(REMOVE_GATHER_SECONDS)
            self._remove_wanted.clear()
            while self._to_remove:
                ids = self._to_remove[: self._batch_size]
                del self._to_remove[: len(ids)]
                try:
                    async with driver_connection(self._engine) as conn:
                        await self._remove(conn, ids)
                except Exception:
                    # Rows left are published again by the sweep; JetStream drops the copy.
                    self._logger.warning(
                        "outbox relay: could not remove published events",
                        count=len(ids),
                        exc_info=True,
                    )

    async def _keep_sweeping(self) -> None:
        while True:
            if expired := self._publisher.expire():
                self._logger.warning(
                    "outbox relay: events unacked after %.0f s; the sweep publishes them again",
                    ACK_TIMEOUT_SECONDS,
                    count=expired,
                )
            try:
                if self._nc.is_connected:
                    await self._publish_waiting(self._sweep_after)
            except Exception:
                self._logger.warning("outbox relay: sweeping failed; retrying", exc_info=True)
            await asyncio.sleep(self._poll_seconds)


def _headers(m: OutboxMessage) -> dict[str, str]:
    # The event id as Nats-Msg-Id: JetStream drops a second publish of it (sweep, retry).
    return {"Nats-Msg-Id": str(m.id), "Content-Type": CONTENT_TYPE}
