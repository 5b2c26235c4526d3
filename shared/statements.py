"""SQL built once at import and compiled for asyncpg, run with named values.

The house's way to write a hot path's query (see `shared.db`): a SQLAlchemy Core statement
built from the tables, or `text()` with `:named` parameters, compiled once; a renamed column
fails at import, and no call passes fifteen values by position.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

_DIALECT = asyncpg_dialect()


class Statement:
    """A statement compiled for asyncpg's `$n` parameters; values go as asyncpg takes them
    (SQLAlchemy's type processing is not applied: jsonb as JSON text, enums as their values)."""

    def __init__(self, statement: ClauseElement) -> None:
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)
        self.sql = str(compiled)
        self.names: Sequence[str] = tuple(compiled.positiontup or ())
        # A Python value in a Core expression becomes a parameter no caller would know to pass.
        fixed = [name for name in self.names if not compiled.binds[name].required]
        if fixed:
            raise ValueError(f"values fixed in the statement (use literal_column): {fixed}")

    def args(self, values: Mapping[str, Any]) -> list[Any]:
        """The values in the statement's parameter order; a missing one raises KeyError."""
        return [values[name] for name in self.names]

    async def fetch(self, conn: asyncpg.Connection, **values: Any) -> list[asyncpg.Record]:
        return await conn.fetch(self.sql, *self.args(values))

    async def fetchrow(self, conn: asyncpg.Connection, **values: Any) -> asyncpg.Record | None:
        return await conn.fetchrow(self.sql, *self.args(values))

    async def fetchone(self, conn: asyncpg.Connection, **values: Any) -> asyncpg.Record:
        """The row of a statement that always returns one (an upsert's, or a locked row's)."""
        row = await self.fetchrow(conn, **values)
        if row is None:
            raise LookupError(f"the statement returned no row: {self.sql[:80]}")
        return row

    async def fetchval(self, conn: asyncpg.Connection, **values: Any) -> Any:
        return await conn.fetchval(self.sql, *self.args(values))

    async def execute(self, conn: asyncpg.Connection, **values: Any) -> str:
        return await conn.execute(self.sql, *self.args(values))
