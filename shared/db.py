"""Async SQLAlchemy: the engine, a metadata bound to one service's schema, the unit of work.

The house rule for queries (STYLE.md habit 12), the same in every service:

- A service's queries live in its `store.py`, which says its style in its docstring. The
  style is SQLAlchemy (ORM or Core) on an `AsyncSession`. A hot path may instead be SQL on
  asyncpg, as a `shared.statements.Statement`: built once at import from the tables (Core, or
  `text()` with named parameters), run with named values.
- A store function takes one handle: the session (`uow.session`), asyncpg's connection
  (`uow.conn`; `runtime.connection()` for a read outside a command), or the `UnitOfWork`
  itself for a statement that writes its own events (`fetchrow_writing_events`).
- A command (in `service.py`) is one unit of work, `async with runtime.uow() as uow:`; its
  events go with `uow.record(...)`. Nothing else begins or commits.
- A duplicate is found by `ON CONFLICT ... DO NOTHING`, never by a constraint's name.
"""

import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import asyncpg
import orjson
from sqlalchemy import MetaData, Table
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared import context
from shared.driver import asyncpg_of
from shared.errors import TooLarge
from shared.events import CloudEvent, EventData
from shared.inbox import inbox_table
from shared.outbox import (
    EVENT_PARAMETERS,
    OutboxMessage,
    event_bytes_carried,
    insert_literal_sql,
    outbox_table,
)
from shared.statements import Statement

log = logging.getLogger(__name__)

# Stable constraint names: migrations and `ON CONFLICT ON CONSTRAINT` name them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def schema_metadata(schema: str) -> MetaData:
    """Metadata whose tables live in the service's own schema, with its outbox and inbox."""
    metadata = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)
    outbox_table(metadata)
    inbox_table(metadata)
    return metadata


async def connect_raw(database_url: str | URL) -> asyncpg.Connection:
    """An asyncpg connection from a SQLAlchemy URL, including the `?host=<socket dir>` form."""
    url = make_url(database_url)
    hosts = url.query.get("host") or url.host  # a tuple when the URL names several
    return await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=list(hosts) if isinstance(hosts, tuple) else hosts,
        port=url.port,
        database=url.database,
    )


def substring_pattern(text: str) -> str:
    """An ILIKE pattern matching names that hold `text`: its own % and _ match only themselves."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def apply_changes(session: AsyncSession, entity: Any, changes: dict[str, Any]) -> None:
    """Write the changes to a mapped entity with a new `updated_at` (unless given); every value
    is known here, so nothing is read back."""
    for key, value in changes.items():
        setattr(entity, key, value)
    if "updated_at" not in changes:
        entity.updated_at = datetime.now(UTC)
    await session.flush()


def create_engine(database_url: str, pool_size: int = 20) -> AsyncEngine:
    """An engine in autocommit mode that resets nothing on check-in: transactions are the unit
    of work's own (`BEGIN` on asyncpg's connection), so SQLAlchemy never begins or commits."""
    return create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        pool_use_lifo=True,
        json_deserializer=_json_loads,
    )


# orjson reads an integer past 64 bits as a float and refuses numbers past a double's range;
# such a value (a run of 19 digits or more, as any integer from 10**18 up has) is read exactly
# by the standard library instead.
_LONG_NUMBER = re.compile(r"\d{19}")


def _json_loads(text: str) -> Any:
    """json and jsonb values as they come back: by orjson (a tenth of the standard library's
    time on a page of versions), unless a number needs the standard library's exactness."""
    if _LONG_NUMBER.search(text):
        return json.loads(text)
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


class UnitOfWork:
    """One command's transaction: its changes and the events they cause commit together.

    `session` (SQLAlchemy) and `conn` (asyncpg, under it) share it, and recorded events go to the
    outbox with the COMMIT. Made with `begin=False`, a command of one statement commits by itself
    (`fetchrow_writing_events`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        service: str,
        outbox: Table,
        committed: Callable[[Sequence[OutboxMessage]], None] | None = None,
        *,
        begin: bool = True,
        max_event_bytes: int = event_bytes_carried(),
    ) -> None:
        self._engine = engine
        self.service = service
        self._outbox = outbox
        self._committed = committed
        self._begin_at_start = begin
        self._max_event_bytes = max_event_bytes
        self._events: list[CloudEvent] = []
        self._written: list[OutboxMessage] = []  # committed: for the relay
        self._written_in_transaction: list[OutboxMessage] = []
        self._session: AsyncSession | None = None

    async def __aenter__(self) -> Self:
        self._events = []
        self._written = []
        self._written_in_transaction = []
        self._session = None
        self._begun = False
        self._ended = False
        self._connection = await self._engine.connect()
        try:
            self.conn: asyncpg.Connection = await asyncpg_of(self._connection)
            if self._begin_at_start:
                await self.begin()
        except BaseException:
            await self._give_back()
            raise
        return self

    @property
    def begun(self) -> bool:
        return self._begun

    async def begin(self) -> None:
        """Start the transaction (at entry, unless made with `begin=False`)."""
        if self._begun:
            raise RuntimeError("the unit of work has begun already")
        await self.conn.execute("BEGIN")
        self._begun = True

    @property
    def session(self) -> AsyncSession:
        """An ORM session on the unit of work's transaction, made when first asked for."""
        if not self._begun:
            raise RuntimeError("an ORM session needs the unit of work's transaction: begin() first")
        if self._session is None:
            self._session = AsyncSession(
                bind=self._connection,
                expire_on_commit=False,
                autoflush=False,
            )
        return self._session

    def record(self, data: EventData, aggregate_id: UUID | str | None) -> CloudEvent:
        """An event the commit writes to the outbox."""
        if not self._begun:
            raise RuntimeError("an event is recorded inside the transaction: begin() first")
        event = self._wrap(data, aggregate_id)
        self._events.append(event)
        return event

    async def fetchrow_writing_events(
        self,
        statement: Statement,
        values: Mapping[str, Any],
        *,
        events: Sequence[tuple[EventData, UUID | str | None]],
        fill: Mapping[str, str] = {},
    ) -> asyncpg.Record | None:
        """Run a statement that writes the command's events itself; its row, or None when it wrote
        nothing (and so no events).

        The statement holds `shared.outbox.events_written_by` with the same `fill` (data fields
        set from its row). Before `begin()` it commits by itself: change and events in one round
        trip."""
        written = [self._wrap(data, aggregate_id) for data, aggregate_id in events]
        # Stamped at the statement's own commit, or very near the COMMIT.
        messages = _committing(written, self._max_event_bytes)
        arrays = (
            [m.id for m in messages],
            [m.subject for m in messages],
            [m.payload for m in messages],
        )
        row = await statement.fetchrow(
            self.conn, **values, **dict(zip(EVENT_PARAMETERS, arrays, strict=True))
        )
        if row is None:
            return None
        if fill:
            for event in written:
                event.data.update({field: row[column] for field, column in fill.items()})
            messages = [
                m._replace(payload=e.to_json()) for m, e in zip(messages, written, strict=True)
            ]
        (self._written_in_transaction if self._begun else self._written).extend(messages)
        return row

    def _wrap(self, data: EventData, aggregate_id: UUID | str | None) -> CloudEvent:
        return CloudEvent.wrap(
            data,
            service=self.service,
            aggregate_id=aggregate_id,
            actor=context.actor.get(),
            correlation_id=context.correlation_id.get(),
        )

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self._begun:
                # Every statement committed by itself; one interrupted mid-way leaves the
                # connection in a state nobody knows.
                interrupted = exc_type is not None and not issubclass(exc_type, Exception)
                self._ended = not interrupted and not self.conn.is_in_transaction()
                if exc_type is None and not self._ended:
                    self._uncommitted()
            elif exc_type is None:
                await self._commit()
            else:
                await self._rollback_after(exc)
        finally:
            try:
                if self._session is not None:
                    await self._session.close()
            finally:
                try:
                    await self._give_back()
                finally:
                    # Whatever committed is published, even when the command failed afterwards.
                    self._dispatch()

    async def _give_back(self) -> None:
        """The connection back to the pool; if neither commit nor rollback went through, its
        state is unknown, so it is closed instead."""
        try:
            if not self._ended:
                await self._connection.invalidate()
        finally:
            await self._connection.close()

    def _uncommitted(self) -> None:
        """Fail a command whose statements ran in a transaction it did not begin (nothing they
        wrote committed); its events are not published."""
        self._written.clear()
        raise RuntimeError(
            "the unit of work's statements ran in a transaction it did not begin: nothing it "
            "wrote committed"
        )

    async def _rollback_after(self, error: BaseException | None) -> None:
        """Roll back after the command's error, which stays the one raised; after an interruption
        (or a failed ROLLBACK) the connection's state is unknown, and `_give_back` closes it."""
        if isinstance(error, Exception):
            try:
                if self.conn.is_in_transaction():  # a failed COMMIT has already ended it
                    await self.conn.execute("ROLLBACK")
            except Exception:
                log.warning("unit of work: rollback failed; closing its connection", exc_info=True)
                return
            self._ended = True

    async def _commit(self) -> None:
        try:
            if self._session is not None:
                await self._session.flush()
            messages = _committing(self._events, self._max_event_bytes)
            commit = "COMMIT"
            if messages:
                commit = f"{insert_literal_sql(self._outbox, messages)}; COMMIT"
            await self.conn.execute(commit)
        except BaseException as error:
            await self._rollback_after(error)
            raise
        self._ended = True
        self._written.extend(self._written_in_transaction)
        self._written.extend(messages)

    def _dispatch(self) -> None:
        if self._written and self._committed is not None:
            self._committed(self._written)


def _committing(events: Sequence[CloudEvent], max_bytes: int) -> list[OutboxMessage]:
    """The events as outbox rows, stamped now (an event happens when its change commits); one
    larger than the bus takes refuses the change (413), since it could never be published."""
    committing = datetime.now(UTC)
    messages = []
    for event in events:
        event.time = committing
        payload = event.to_json()
        if len(payload) > max_bytes:
            raise TooLarge(
                f"the change makes a {event.type} event of {len(payload)} bytes, more than the "
                f"{max_bytes} an event may have",
                kind="event-too-large",
                max_bytes=max_bytes,
            )
        messages.append(OutboxMessage(event.id, event.nats_subject, payload))
    return messages
