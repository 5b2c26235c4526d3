"""Pooled connections through SQLAlchemy's public API, with asyncpg's connection under each.

Hot paths send SQL straight through asyncpg (half the CPU of a statement through SQLAlchemy);
the pool, its limits and its recycling stay SQLAlchemy's.
"""

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


async def asyncpg_of(connection: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a pooled SQLAlchemy connection."""
    driver = (await connection.get_raw_connection()).driver_connection
    if driver is None:  # only once the pool has closed it
        raise RuntimeError("the pooled connection has no asyncpg connection under it")
    return driver


@contextlib.asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """asyncpg's connection from the engine's pool, each statement its own transaction.

    A user interrupted mid-statement (cancelled) or leaving a transaction open hands on a
    connection in a state nobody knows: it is invalidated (closed), never given back."""
    async with engine.connect() as connection:
        driver = await asyncpg_of(connection)
        try:
            yield driver
        except BaseException as error:
            if not isinstance(error, Exception) or driver.is_in_transaction():
                await connection.invalidate()
            raise
        if driver.is_in_transaction():
            await connection.invalidate()
