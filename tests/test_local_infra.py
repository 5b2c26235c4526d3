"""The embedded servers a fresh machine relies on when nothing else runs: they start and work."""

from pathlib import Path

import nats
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import connect_raw
from shared.local_infra import (
    EmbeddedNats,
    EmbeddedPostgres,
    create_database,
    drop_database,
    start_embedded_nats,
    start_embedded_postgres,
    tcp_answers,
)


@pytest.fixture
def embedded_nats(tmp_path: Path):
    server = start_embedded_nats(tmp_path / "nats")
    yield server
    server.stop()


@pytest.fixture
def embedded_postgres(tmp_path: Path):
    server = start_embedded_postgres(tmp_path / "pgdata", delete_on_stop=True)
    yield server
    server.stop()


async def test_embedded_nats_accepts_a_jetstream_publish(embedded_nats: EmbeddedNats) -> None:
    client = await nats.connect(embedded_nats.url)
    try:
        js = client.jetstream()
        await js.add_stream(name="PROBE", subjects=["probe.>"])
        ack = await js.publish("probe.hello", b"hi", headers={"Nats-Msg-Id": "one"})
        duplicate = await js.publish("probe.hello", b"hi", headers={"Nats-Msg-Id": "one"})
        message = await js.get_msg("PROBE", seq=ack.seq)
    finally:
        await client.close()
    assert (ack.stream, ack.seq) == ("PROBE", 1)
    assert duplicate.duplicate is True
    assert message.data == b"hi"


async def test_embedded_nats_stops_and_frees_its_port(tmp_path: Path) -> None:
    server = start_embedded_nats(tmp_path / "nats")
    server.stop()
    assert server.process.returncode is not None
    assert not tcp_answers("127.0.0.1", server.port)


async def test_embedded_postgres_answers_over_its_unix_socket(
    embedded_postgres: EmbeddedPostgres,
) -> None:
    url = embedded_postgres.database_url("postgres")
    assert url == f"postgresql+asyncpg://postgres@/postgres?host={embedded_postgres.socket_dir}"
    conn = await connect_raw(url)
    try:
        assert await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def test_services_reach_a_fresh_database_on_embedded_postgres_through_sqlalchemy(
    embedded_postgres: EmbeddedPostgres,
) -> None:
    server_url = embedded_postgres.database_url("postgres")
    url = await create_database(server_url, "modelplane_probe")
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SELECT current_database()")) == "modelplane_probe"
    finally:
        await engine.dispose()
    await drop_database(server_url, "modelplane_probe")
    conn = await connect_raw(server_url)
    try:
        names = await conn.fetch("SELECT datname FROM pg_database")
    finally:
        await conn.close()
    assert "modelplane_probe" not in {row["datname"] for row in names}


async def test_session_database_is_fresh_and_empty(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            name = await conn.scalar(text("SELECT current_database()"))
            tables = await conn.scalar(
                text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
            )
    finally:
        await engine.dispose()
    assert name.startswith("modelplane_test_")
    assert tables == 0


async def test_embedded_nats_comes_back_on_its_port_after_a_restart(tmp_path: Path) -> None:
    first = start_embedded_nats(tmp_path / "nats")
    first.stop()
    again = start_embedded_nats(tmp_path / "nats")
    try:
        assert again.port == first.port
        client = await nats.connect(first.url)
        await client.close()
    finally:
        again.stop()
