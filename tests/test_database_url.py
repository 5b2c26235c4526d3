"""Database URLs as users write them become the one form the services connect with."""

import pytest

from shared.database_url import (
    DatabaseUrlError,
    connect_arguments,
    normalize_database_url,
    sync_database_url,
)
from shared.settings import ServiceSettings


@pytest.mark.parametrize(
    ("written", "normalized"),
    [
        ("postgresql://u:p@db:5432/mp", "postgresql+asyncpg://u:p@db:5432/mp"),
        ("postgres://u:p@db/mp", "postgresql+asyncpg://u:p@db/mp"),
        ("postgresql+asyncpg://u@db/mp", "postgresql+asyncpg://u@db/mp"),
        ("postgresql+psycopg://u@db/mp", "postgresql+asyncpg://u@db/mp"),
        ("postgresql://u@db/mp?sslmode=require", "postgresql+asyncpg://u@db/mp?ssl=require"),
        ("postgres://u@db/mp?sslmode=verify-full", "postgresql+asyncpg://u@db/mp?ssl=verify-full"),
        (" postgresql://u@db/mp ", "postgresql+asyncpg://u@db/mp"),
        (
            "postgresql://postgres@/mp?host=/run/pg",
            "postgresql+asyncpg://postgres@/mp?host=%2Frun%2Fpg",
        ),
    ],
)
def test_every_written_form_becomes_an_asyncpg_url(written: str, normalized: str) -> None:
    assert normalize_database_url(written) == normalized
    assert normalize_database_url(normalized) == normalized
    assert ServiceSettings(database_url=written).database_url == normalized


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("mysql://u@db/mp", "mysql:// is not a Postgres URL"),
        ("sqlite:///mp.db", "sqlite:// is not a Postgres URL"),
        ("db.example.com:5432", "is not a URL"),
        ("postgresql://u@db/mp?sslmode=sometimes", "sslmode=sometimes is none of"),
        ("postgresql://u@db/mp?sslmode=require&ssl=disable", "disagree"),
        (
            "postgresql://u@db/mp?application_name=x",
            "unsupported query parameter(s) application_name",
        ),
        ("postgresql://u@db", "no database"),
        ("postgresql:///mp", "no host"),
    ],
)
def test_anything_else_is_one_line_naming_the_variable(written: str, said: str) -> None:
    with pytest.raises(DatabaseUrlError) as error:
        normalize_database_url(written, "MODELPLANE_TEST_DATABASE_URL")
    message = str(error.value)
    assert message.startswith("MODELPLANE_TEST_DATABASE_URL") and said in message
    assert "\n" not in message


def test_mlflow_gets_the_same_database_with_libpq_ssl_words() -> None:
    written = "postgres://u:p@db:5432/mp?sslmode=require"
    assert sync_database_url(written) == "postgresql+psycopg2://u:p@db:5432/mp?sslmode=require"
    assert connect_arguments(written) == {
        "user": "u",
        "password": "p",
        "host": "db",
        "port": 5432,
        "database": "mp",
        "ssl": "require",
    }
