"""Postgres URLs as users write them (`postgresql://`, `postgres://`, `...+psycopg://`, with
`sslmode=`), made into the one form the services connect with: `postgresql+asyncpg://`.

Every managed Postgres and tutorial hands out libpq's form; SQLAlchemy would read it as a
psycopg URL, and asyncpg takes `ssl=` where libpq takes `sslmode=`.
"""

from typing import Any

import asyncpg
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

ASYNC_DRIVER = "postgresql+asyncpg"
_POSTGRES_SCHEMES = frozenset(
    {"postgresql", "postgres", "postgresql+asyncpg", "postgresql+psycopg", "postgresql+psycopg2"}
)
# libpq's sslmode values; asyncpg's `ssl` takes the same words.
_SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
# Query parameters with a meaning here: `host` (a unix socket directory) and the TLS mode.
_KNOWN_PARAMETERS = frozenset({"host", "ssl", "sslmode"})
_EXAMPLE = "postgresql://user:password@host:5432/database"


class DatabaseUrlError(ValueError):
    """The URL is not one we can connect with, or its server does not answer; one line."""


def normalize_database_url(value: str, variable: str = "MODELPLANE_DATABASE_URL") -> str:
    """The asyncpg SQLAlchemy URL for any accepted form; `DatabaseUrlError` names `variable`."""
    url = _parse(value, variable)
    query = dict(url.query)
    unknown = sorted(set(query) - _KNOWN_PARAMETERS)
    if unknown:
        raise DatabaseUrlError(
            f"{variable}: unsupported query parameter(s) {', '.join(unknown)}; "
            "accepted: host, sslmode (or ssl)"
        )
    mode = query.pop("sslmode", None)
    if mode is not None and query.get("ssl", mode) != mode:
        raise DatabaseUrlError(f"{variable}: sslmode={mode} and ssl={query['ssl']} disagree")
    mode = query.pop("ssl", mode)
    if mode is not None:
        if mode not in _SSL_MODES:
            raise DatabaseUrlError(
                f"{variable}: sslmode={mode} is none of {', '.join(sorted(_SSL_MODES))}"
            )
        query["ssl"] = mode
    if not (url.host or query.get("host")):
        raise DatabaseUrlError(f"{variable}: no host in {_redacted(url)}; write {_EXAMPLE}")
    if not url.database:
        raise DatabaseUrlError(f"{variable}: no database in {_redacted(url)}; write {_EXAMPLE}")
    url = url.set(drivername=ASYNC_DRIVER, query=query)
    return url.render_as_string(hide_password=False)


def sync_database_url(value: str, driver: str = "psycopg2") -> str:
    """The same database for a synchronous libpq client (MLflow's server): `sslmode=` again."""
    url = make_url(normalize_database_url(value))
    query = dict(url.query)
    if (mode := query.pop("ssl", None)) is not None:
        query["sslmode"] = mode
    url = url.set(drivername=f"postgresql+{driver}", query=query)
    return url.render_as_string(hide_password=False)


def connect_arguments(value: str) -> dict[str, Any]:
    """`asyncpg.connect` keyword arguments for a URL, including the `?host=<socket dir>` form."""
    url = make_url(normalize_database_url(value))
    arguments: dict[str, Any] = {
        "user": url.username,
        "password": url.password,
        "host": url.query.get("host") or url.host,
        "port": url.port,
        "database": url.database,
    }
    if (mode := url.query.get("ssl")) is not None:
        arguments["ssl"] = mode
    return arguments


async def check_database_answers(
    value: str, variable: str = "MODELPLANE_DATABASE_URL", timeout: float = 10.0
) -> None:
    """Connect once; a server that does not answer or refuses is one line naming `variable`."""
    arguments = connect_arguments(value)
    where = _redacted(make_url(value))
    try:
        conn = await asyncpg.connect(**arguments, timeout=timeout)
    except (OSError, TimeoutError) as error:
        reason = str(error) or type(error).__name__
        raise DatabaseUrlError(f"{variable}: no Postgres answers at {where} ({reason})") from None
    except asyncpg.InvalidCatalogNameError:
        return  # the server answers; each service creates the database it is missing
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise DatabaseUrlError(f"{variable}: Postgres at {where} refused: {error}") from None
    await conn.close()


def _parse(value: str, variable: str) -> URL:
    text = value.strip()
    try:
        url = make_url(text)
    except ArgumentError:
        raise DatabaseUrlError(
            f"{variable} is not a URL ({text[:40]!r}); write {_EXAMPLE}"
        ) from None
    if url.drivername not in _POSTGRES_SCHEMES:
        raise DatabaseUrlError(
            f"{variable}: {url.drivername}:// is not a Postgres URL; write {_EXAMPLE}"
        )
    return url


def _redacted(url: URL) -> str:
    return url.render_as_string(hide_password=True)
