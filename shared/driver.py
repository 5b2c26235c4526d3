"""asyncpg's own connection, checked out of SQLAlchemy's pool.

A statement sent straight through asyncpg costs about half the CPU of one sent through
SQLAlchemy; hot paths use it. SQLAlchemy is put in autocommit mode on the checked-out connection
so it never begins or commits there: the caller owns any transaction (the pool resets the mode
when the connection comes back).
"""

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine


async def checkout(engine: AsyncEngine) -> tuple[AsyncConnection, asyncpg.Connection]:
    """A pooled connection and its asyncpg connection; close the first to give both back."""
    connection = await engine.connect()
    try:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        raw = await connection.get_raw_connection()
    except BaseException:
        await connection.close()
        raise
    return connection, raw.driver_connection


@contextlib.asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """asyncpg's connection from the engine's pool, each statement its own transaction."""
    connection, conn = await checkout(engine)
    try:
        yield conn
    finally:
        await connection.close()
