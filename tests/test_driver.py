"""shared.driver against the real database: a connection whose user was interrupted mid-statement
goes back to nobody."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine
from shared.driver import driver_connection


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=1)  # every checkout, the same connection
    try:
        yield engine
    finally:
        await engine.dispose()


async def _interrupted_mid_statement(
    engine: AsyncEngine, use: Callable[[asyncpg.Connection], Awaitable[object]]
) -> None:
    """A task that `use`s a pooled connection and is cancelled while the server still runs
    its statement."""
    started = asyncio.Event()

    async def user() -> None:
        async with driver_connection(engine) as conn:
            started.set()
            await use(conn)

    task = asyncio.create_task(user())
    await started.wait()
    await asyncio.sleep(0.1)  # the statement is on the server now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_transaction_begun_by_an_interrupted_statement_is_nobody_elses(
    engine: AsyncEngine,
) -> None:
    # The server began a transaction that the client never heard of: when the cancellation
    # came, asyncpg had no reply yet, so to it the connection was not in one.
    await _interrupted_mid_statement(
        engine, lambda conn: conn.execute("BEGIN; SELECT pg_sleep(0.5)")
    )

    async with driver_connection(engine) as conn:
        await conn.fetchval("SELECT 1")  # fails in the aborted transaction if handed over
        assert not conn.is_in_transaction()


async def test_a_statement_interrupted_in_a_transaction_leaves_the_next_user_its_own(
    engine: AsyncEngine,
) -> None:
    async def in_a_transaction(conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_sleep(0.5)")

    await _interrupted_mid_statement(engine, in_a_transaction)

    async with driver_connection(engine) as conn, conn.transaction():
        assert await conn.fetchval("SELECT 1") == 1


async def test_a_connection_past_the_pool_s_size_is_closed_when_it_comes_back(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    # Two users at once on a pool of one: the second gets an overflow connection, which the
    # pool closes when it comes back (its place is taken), and which asyncpg closes only by
    # awaiting. Closed where nothing could await, it stayed open on the server and the pool
    # logged an ERROR (MissingGreenlet), as the gateway did under the seeding's 32 clients.
    both_in = asyncio.Barrier(2)

    async def user() -> int:
        async with driver_connection(engine) as conn:
            await both_in.wait()
            return await conn.fetchval("SELECT pg_backend_pid()")

    first, second = await asyncio.gather(user(), user())

    async with driver_connection(engine) as conn:
        alive = await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])", [first, second]
        )
    assert alive == 1  # the one the pool kept (and this check used)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
