"""asyncpg's own connections, checked out of SQLAlchemy's pool.

The engine (`shared.db.create_engine`) is in autocommit mode and resets nothing when a
connection comes back: SQLAlchemy never begins or commits. Every transaction is the caller's,
on asyncpg's connection (the unit of work's), and a connection goes back only outside one.

Both halves are about cost: a statement sent straight through asyncpg costs about half the CPU
of one sent through SQLAlchemy, and this checkout about a seventh of a SQLAlchemy `Connection`'s
with its per-checkout isolation switch (bench/README.md).
"""

import contextlib
from collections.abc import AsyncIterator

import asyncpg
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import Pool, PoolProxiedConnection, QueuePool
from sqlalchemy.util.concurrency import greenlet_spawn


async def checkout(engine: AsyncEngine) -> PoolProxiedConnection:
    """A pooled connection; `.driver_connection` is asyncpg's. Give it back with `check_in`."""
    return await engine.raw_connection()


async def check_in(
    engine: AsyncEngine, pooled: PoolProxiedConnection, *, reusable: bool = True
) -> None:
    """Back to the pool, unless it is broken, still inside a transaction, or its user cannot
    tell what state it is in: then it is closed, so nobody gets a connection in a state they
    did not make."""
    if not pooled.is_valid:  # SQLAlchemy closed it already and gave the pool its place back
        return
    conn: asyncpg.Connection = pooled.driver_connection
    if not reusable or conn.is_closed() or conn.is_in_transaction():
        pooled.invalidate()  # asyncpg's `terminate`, which needs no awaiting
    elif _has_room(engine.sync_engine.pool):
        pooled.close()
    else:
        # One opened past the pool's size goes, and asyncpg closes a connection only by
        # awaiting: SQLAlchemy can await only inside its greenlet. Called without one, the
        # pool logged an ERROR (MissingGreenlet) and the connection stayed open on the server.
        await greenlet_spawn(pooled.close)


def _has_room(pool: Pool) -> bool:
    """Whether a connection given back now stays in the pool: the engine's is a QueuePool;
    any other is taken to close what comes back."""
    return isinstance(pool, QueuePool) and pool.checkedin() < pool.size()


def orm_connection(engine: AsyncEngine, pooled: PoolProxiedConnection) -> AsyncConnection:
    """SQLAlchemy's connection over the same pooled connection: an ORM session bound to it
    works inside the caller's transaction. Closing the pooled connection ends both."""
    return AsyncConnection(engine, Connection(engine.sync_engine, connection=pooled))


@contextlib.asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
    """asyncpg's connection from the engine's pool, each statement its own transaction.

    A user interrupted (cancelled, say) leaves it in a state nobody knows: a statement still
    on the server may have begun a transaction that asyncpg has not heard of yet, and the
    next user's statements would run in it. Such a connection is closed, not given back."""
    pooled = await checkout(engine)
    try:
        yield pooled.driver_connection
    except BaseException as error:
        # An error (an Exception) came with a reply, or between statements; an interruption
        # (a cancellation, an exit) may have come before a reply.
        await check_in(engine, pooled, reusable=isinstance(error, Exception))
        raise
    await check_in(engine, pooled)
